"""An untrained `tiny` WALL-WM checkpoint for the simulated arm, until a trained one exists.

Its deployment metadata matches the simulated arm's robot file (cameras, joints, arm, tool frame)
and its normalisation statistics are fitted to one scripted-expert episode per task, so its
random outputs land in the arm's workspace; its metadata says "untrained".
"""

from __future__ import annotations

from pathlib import Path

from wallwm_ros.bringup_paths import bringup_config
from wallwm_ros.robot_config import load_robot_config

SIM_TASKS = ("pick_place", "stack", "put_in_bin", "push_to_target", "press_buttons")


def write_untrained_checkpoint(out: Path, config: str = "tiny") -> Path:
    """Write the checkpoint directory ``out`` (see the module doc) and return it."""
    from wallwm_core.checkpoint import init_checkpoint, load_demo_arrays, save_checkpoint
    from wallwm_core.model.config import load_model_config
    from wallwm_ros.closed_loop.expert_replay import record_expert_episode

    robot = load_robot_config(bringup_config("robots/sim_arm.yaml"))
    episodes = [
        record_expert_episode(task, 0, "train", out.parent / f"{out.name}_demos")
        for task in SIM_TASKS
    ]
    actions, states = load_demo_arrays([e / "lowdim.safetensors" for e in episodes])
    model_config = load_model_config(config)
    joints = list(robot.policy_joint_names)
    if model_config.action.state_dim != len(joints):
        # the sim publishes both finger joints; the model reads as many joints as it was built for
        joints = joints[: model_config.action.state_dim]
    checkpoint = init_checkpoint(
        model_config,
        cameras=[c.name for c in robot.cameras],
        joint_names=joints,
        arm_names=["arm"],
        ee_frames=["tool0"],
        base_frame=robot.base_frame,
        image_size=(64, 64),
        demo_actions=actions,
        demo_states=states[:, : len(joints)],
    )
    return save_checkpoint(checkpoint, out)


UNTRAINED_NOTE = (
    "NOTE: no trained WALL-WM checkpoint exists in this project yet. The policy is a randomly "
    "initialised `tiny` WALL-WM model ({checkpoint}): the whole loop runs for real, but expect "
    "a Task Progress near 0. Run with --policy expert for the reference."
)


def checkpoint_for_sim(checkpoint: str, workdir: Path) -> tuple[str, bool]:
    """(checkpoint directory, whether it is untrained) for the simulated arm: ``checkpoint`` if
    given, else the one shipped with wallwm_core, else an untrained one written under
    ``workdir``."""
    from wallwm_core.config_loading import ConfigError
    from wallwm_ros.bringup import default_checkpoint

    if checkpoint:
        return checkpoint, False
    try:
        return default_checkpoint(), False
    except ConfigError:
        return str(write_untrained_checkpoint(workdir / "untrained_checkpoint")), True
