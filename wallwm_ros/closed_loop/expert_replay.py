"""The scripted expert as a replay policy: the reference run through the real ROS path.

The expert solves ``(task, seed, variant)`` in an offline simulation; its commanded tool poses and
gripper, cut at the subtask (event) boundaries of the recorded captions, become the scripted
events of a :class:`~wallwm_core.replay_policy.ReplayPolicy`. Served by the policy node and
executed by the controller node on the simulated arm, this shows what the ROS loop achieves with
a policy that knows the answer, and is the baseline a WALL-WM checkpoint is compared against.

Write one for ``policy:=replay`` (sim.launch.py) from the command line::

    python -m wallwm_ros.closed_loop.expert_replay --task pick_place --seed 0 --out build/replay
    ros2 launch wallwm_bringup sim.launch.py task:=pick_place seed:=0 policy:=replay \
        replay_file:=build/replay/expert_replay.yaml

It prints the event instructions to send (``send_goal --task ... --event ...``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

from wallwm_sim.closed_loop_policy import ClosedLoopPolicy

REPLAY_STEP_PERIOD_S = 0.05  # 20 Hz end-effector targets, as the model's action tokens
REPLAY_CHUNK_STEPS = 10
# The offline expert commands joints directly; through the ROS path its end-effector motion is
# tracked by the controller within speed, acceleration and jerk limits, a little behind. Replaying
# 1.5x slower and holding each event's final target briefly keeps grasps from closing early.
REPLAY_TIME_SCALE = 1.5
REPLAY_END_HOLD_S = 0.3


def record_expert_episode(task: str, seed: int, variant: str, output: Path) -> Path:
    """Run the scripted expert once (no cameras) and return the episode directory."""
    from wallwm_core.episode_format import list_episodes
    from wallwm_sim.generate_demos import generate

    generate(output, [task], [seed], [variant], cameras=(), min_score=0.0, show_progress=False)
    entries = list_episodes(output)
    if not entries:
        raise RuntimeError(f"the expert produced no episode for {task} seed {seed}")
    return output / entries[-1]["directory"]


def replay_events_from_episode(
    episode_dir: Path,
    step_period_s: float = REPLAY_STEP_PERIOD_S,
    chunk_steps: int = REPLAY_CHUNK_STEPS,
    arm_name: str = "arm",
    ee_frame: str = "tool0",
    time_scale: float = REPLAY_TIME_SCALE,
    end_hold_s: float = REPLAY_END_HOLD_S,
) -> tuple[dict, list[str]]:
    """(ReplayConfig as a dict, the event instructions in order) from a recorded episode."""
    from wallwm_core.episode_format import read_episode

    episode = read_episode(episode_dir, load_frames=False)
    lowdim = episode.lowdim
    times_ns = lowdim["time_ns"]
    control_period_ns = int(times_ns[1] - times_ns[0]) if len(times_ns) > 1 else 2_000_000
    stride = max(1, round(step_period_s * 1e9 / control_period_ns))
    events, instructions = [], []
    for segment in episode.events["subtask"]:
        steps = list(range(segment.start_step, segment.end_step, stride))
        last = min(segment.end_step, episode.num_steps) - 1
        if steps[-1] != last:
            steps.append(last)
        if len(steps) < 2:
            continue
        instruction = segment.caption
        if instruction in instructions:  # a repeated event gets its own script
            instruction = f"{instruction} (again {instructions.count(segment.caption) + 1})"
        waypoints = []
        for step in steps:
            quaternion = np.asarray(lowdim["action_tool_quaternion"][step], dtype=float)
            quaternion /= np.linalg.norm(quaternion)
            waypoints.append(
                {
                    "time": round(time_scale * (step - steps[0]) * control_period_ns / 1e9, 6),
                    "targets": {
                        arm_name: {
                            "position": [float(v) for v in lowdim["action_tool_position"][step]],
                            "quaternion_wxyz": [float(v) for v in quaternion],
                            "gripper": float(np.clip(lowdim["action_gripper"][step], 0.0, 1.0)),
                        }
                    },
                }
            )
        if end_hold_s > 0.0:
            waypoints.append(
                {**waypoints[-1], "time": round(waypoints[-1]["time"] + end_hold_s, 6)}
            )
        events.append({"instruction": instruction, "waypoints": waypoints})
        instructions.append(instruction)
    config = {
        "frame_id": "base_link",
        "step_period": step_period_s,
        "chunk_steps": chunk_steps,
        "arms": [{"name": arm_name, "ee_frame": ee_frame}],
        "events": events,
    }
    return config, instructions


def write_expert_replay(
    task: str, seed: int, variant: str, workdir: Path
) -> tuple[Path, list[str]]:
    """Record the expert and write its replay file; returns (file, event instructions)."""
    workdir.mkdir(parents=True, exist_ok=True)
    episode = record_expert_episode(task, seed, variant, workdir / "expert_episode")
    config, instructions = replay_events_from_episode(episode)
    path = workdir / "expert_replay.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, instructions


def closed_loop_expert() -> ClosedLoopPolicy:
    """The same expert replay, per episode, in the simulator harness (no DDS): the reference
    for ``--policy wallwm`` there, as ``evaluate_ros --policy expert`` is for the nodes::

        python -m wallwm_sim.evaluate --policy wallwm_ros.closed_loop.expert_replay:closed_loop_expert ...
    """
    from wallwm_core.replay_policy import ReplayPolicy

    workdir = Path(tempfile.mkdtemp(prefix="wallwm_expert_replay_"))

    def episode(task: str, seed: int, variant: str) -> tuple[ReplayPolicy, list[str]]:
        replay, events = write_expert_replay(
            task, seed, variant, workdir / f"{task}_{variant}_seed{seed}"
        )
        return ReplayPolicy.from_yaml(replay), events

    return ClosedLoopPolicy(None, (), per_episode=episode)


def main(argv: Sequence[str] | None = None) -> int:
    from wallwm_sim.tasks import get_task

    parser = argparse.ArgumentParser(
        prog="python -m wallwm_ros.closed_loop.expert_replay",
        description="Write the scripted expert's replay file for policy:=replay.",
    )
    parser.add_argument("--task", default="pick_place")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", default="train")
    parser.add_argument("--out", type=Path, required=True, help="folder for expert_replay.yaml")
    args = parser.parse_args(argv)
    try:
        task = get_task(args.task)
    except ValueError as error:
        parser.error(str(error))
    if args.variant not in task.variants or args.seed < 0:
        parser.error(f"task {args.task!r} has the variants {list(task.variants)}; seeds are >= 0")
    path, events = write_expert_replay(args.task, args.seed, args.variant, args.out)
    print(f"wrote {path}")
    print("run it:")
    print(
        f"  ros2 launch wallwm_bringup sim.launch.py task:={args.task} seed:={args.seed} "
        f"variant:={args.variant} policy:=replay replay_file:={path.resolve()}"
    )
    event_args = " ".join(f"--event {shlex.quote(event)}" for event in events)
    instruction = task.sample(args.seed, args.variant).instruction
    print(f"  ros2 run wallwm send_goal --task {shlex.quote(instruction)} {event_args}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
