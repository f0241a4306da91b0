"""Which WALL-WM checkpoint drives the simulated arm: the given one, the shipped one, or an
untrained ``tiny`` one written on the spot.

The untrained checkpoint's deployment metadata matches the simulated arm (its cameras, joints,
arm and tool frame: those of wallwm_bringup/config/robots/sim_arm.yaml, a test keeps them in
step) and its normalisation statistics are fitted to one scripted-expert episode per task, so
its random outputs land in the arm's workspace; its metadata says "untrained". ROS-free: the ROS
harness uses this too.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from wallwm_sim import cameras, description

SIM_TASKS = ("pick_place", "stack", "put_in_bin", "push_to_target", "press_buttons")
# The trained checkpoint wallwm_core ships for the simulated arm (a checkpoint directory, found by
# its metadata.yaml); the ROS bringup names the same default.
SHIPPED_CHECKPOINT = ("wallwm_core", "checkpoints/wallwm-sim-cpu")
UNTRAINED_IMAGE_SIZE = (64, 64)
# wallwm_core.checkpoint.METADATA_FILE, named here because that module imports torch.
METADATA_FILE = "metadata.yaml"

UNTRAINED_NOTE = (
    "NOTE: no trained WALL-WM checkpoint exists in this project yet. The policy is a randomly "
    "initialised `tiny` WALL-WM model ({checkpoint}): the whole loop runs for real, but expect "
    "a Task Progress near 0. Run with --policy expert for the reference."
)


def write_untrained_checkpoint(out: Path, config: str = "tiny") -> Path:
    """Write the checkpoint directory ``out`` (see the module doc) and return it."""
    from wallwm_core.checkpoint import init_checkpoint, load_demo_arrays, save_checkpoint
    from wallwm_core.episode_format import list_episodes
    from wallwm_core.model.config import load_model_config
    from wallwm_sim.generate_demos import generate

    demos = out.parent / f"{out.name}_demos"
    generate(demos, SIM_TASKS, [0], ["train"], cameras=(), min_score=0.0, show_progress=False)
    entries = list_episodes(demos)[-len(SIM_TASKS) :]
    if len(entries) != len(SIM_TASKS):
        raise RuntimeError(f"the expert recorded {len(entries)} of {len(SIM_TASKS)} episodes")
    actions, states = load_demo_arrays(
        [demos / entry["directory"] / "lowdim.safetensors" for entry in entries]
    )
    model_config = load_model_config(config)
    # The sim reports both finger joints; the model reads as many joints as it was built for.
    joints = list(description.ALL_JOINT_NAMES[: model_config.action.state_dim])
    checkpoint = init_checkpoint(
        model_config,
        cameras=list(cameras.CAMERA_NAMES),
        joint_names=joints,
        arm_names=["arm"],
        ee_frames=[description.TOOL_FRAME],
        base_frame=description.BASE_FRAME,
        image_size=UNTRAINED_IMAGE_SIZE,
        demo_actions=actions,
        demo_states=states[:, : len(joints)],
    )
    return save_checkpoint(checkpoint, out)


def shipped_checkpoint() -> Path | None:
    """The checkpoint directory wallwm_core ships for the simulated arm, or None."""
    package, inner = SHIPPED_CHECKPOINT
    try:
        path = Path(str(importlib.resources.files(package).joinpath(inner)))
    except ModuleNotFoundError:
        return None
    return path if (path / METADATA_FILE).is_file() else None


def checkpoint_for_sim(checkpoint: str, workdir: Path) -> tuple[str, bool]:
    """(checkpoint directory, whether it is untrained): ``checkpoint`` if given, else the shipped
    one, else an untrained one written under ``workdir`` (reused when already there)."""
    if checkpoint:
        return checkpoint, False
    shipped = shipped_checkpoint()
    if shipped is not None:
        return str(shipped), False
    out = workdir / "untrained_checkpoint"
    if not (out / METADATA_FILE).is_file():
        write_untrained_checkpoint(out)
    return str(out), True
