"""One simulated episode through the ROS nodes: reset the sim node, send the task, read the score.

Shared by the main job (:mod:`wallwm_ros.closed_loop.run_sim`, one episode) and the ROS evaluation
(:mod:`wallwm_ros.closed_loop.evaluate_ros`, tasks x seeds). The caller's node talks to the nodes
of a running simulation bringup over DDS: ``reset_simulation`` and ``get_task_progress`` of the sim
node, ``execute_task`` of the policy node.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from wallwm_msgs.action import ExecuteTask
from wallwm_msgs.srv import GetTaskProgress, ResetSimulation
from wallwm_ros import qos
from wallwm_ros.conversions import duration_to_ns
from wallwm_ros.image_decoding import image_to_array
from wallwm_ros.send_goal import NoServerError, TaskResult, execute_task
from wallwm_sim.evaluate import save_gif

FRAME_EVERY_S = 0.5  # sim seconds between frames kept for the contact sheet / GIF


class EpisodeError(RuntimeError):
    """The simulation refused the episode (e.g. an unknown task or variant)."""


def loop_fault(sim_node) -> Callable[[], str]:
    """For an in-process sim node: why its simulation loop stopped, empty while it runs."""

    def fault() -> str:
        loop = sim_node.loop
        if loop.running:
            return ""
        return loop.counters().fault or "the simulation loop stopped"

    return fault


@dataclasses.dataclass(frozen=True)
class RosEpisode:
    """What one episode through the ROS nodes did and scored."""

    task: str
    seed: int
    variant: str
    task_description: str
    events: tuple[str, ...]
    result: TaskResult
    progress: float  # Task Progress 0-100 when the goal ended
    points: int
    max_points: int
    criteria_met: tuple[str, ...]
    arm_motion_rad: float = 0.0  # largest arm joint displacement while the goal ran
    # the policy node's inference time of each chunk, from the task feedback (one per chunk)
    chunk_latencies_ms: tuple[float, ...] = ()


class ArmMotion:
    """The largest arm joint displacement from a reference, over the joint states received."""

    def __init__(self, arm_joints: int = 6) -> None:
        self._arm_joints = arm_joints
        self._lock = threading.Lock()
        self._reference: np.ndarray | None = None
        self._largest = 0.0
        self._armed = False

    def start(self) -> None:
        """Measure from the next joint state on."""
        with self._lock:
            self._reference, self._largest, self._armed = None, 0.0, True

    def on_joint_state(self, msg: JointState) -> None:
        q = np.asarray(msg.position[: self._arm_joints], dtype=float)
        with self._lock:
            if not self._armed:
                return
            if self._reference is None:
                self._reference = q
            elif q.shape == self._reference.shape:
                self._largest = max(self._largest, float(np.max(np.abs(q - self._reference))))

    def stop(self) -> float:
        with self._lock:
            self._armed = False
            return self._largest


class EpisodeFrames:
    """One camera's frames, one every ``period_s`` of simulation time, for a contact sheet/GIF."""

    def __init__(self, period_s: float = FRAME_EVERY_S) -> None:
        self._period_ns = round(period_s * 1e9)
        self._frames: list[np.ndarray] = []
        self._last_stamp_ns = -(10**18)
        self._lock = threading.Lock()

    def on_image(self, msg: Image) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._lock:
            if stamp_ns - self._last_stamp_ns < self._period_ns:
                return
            self._last_stamp_ns = stamp_ns
        array = np.array(image_to_array(msg.encoding, msg.height, msg.width, msg.step, 0, msg.data))
        with self._lock:
            self._frames.append(array)

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    @property
    def frames(self) -> list[np.ndarray]:
        with self._lock:
            return list(self._frames)

    def write_gif(self, path: Path) -> Path | None:
        """The frames as a GIF (10 per second of playback); ``None`` when there are none."""
        return save_gif(self.frames, path, frame_period_s=0.1)

    def write_contact_sheet(self, path: Path, count: int = 8) -> Path | None:
        """Up to ``count`` evenly spaced frames side by side; ``None`` when there are none."""
        from PIL import Image as PILImage

        frames = self.frames
        if not frames:
            return None
        picks = np.linspace(0, len(frames) - 1, min(count, len(frames)))
        PILImage.fromarray(np.concatenate([frames[round(i)] for i in picks], axis=1)).save(path)
        return path


def call_service(
    node: Node,
    service_type,
    name: str,
    request,
    timeout_s: float = 30.0,
    resend_after_s: float = 5.0,
):
    """Call a service that may be repeated from a node that another thread spins; raises
    NoServerError on time-out.

    A request unanswered after ``resend_after_s`` is sent again (the wait doubling each time):
    Fast DDS drops a response when the server has not yet matched the client's response reader
    (a loaded machine, a new client). The answer returned is the last request's, so no repeated
    request is still pending when the caller goes on: a slow reset answered late cannot be
    followed by a queued second reset in the middle of the episode."""
    client = node.create_client(service_type, name)
    try:
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise NoServerError(f"no service {name!r} after {timeout_s} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout_s
        sent_at, wait_s = time.monotonic(), resend_after_s
        while not future.done():
            now = time.monotonic()
            if now > deadline:
                raise NoServerError(f"service {name!r} did not answer in {timeout_s} s")
            if now - sent_at > wait_s:
                node.get_logger().warning(f"no answer from {name!r} in {wait_s} s: asking again")
                future = client.call_async(request)
                sent_at, wait_s = now, 2.0 * wait_s
            time.sleep(0.01)
        return future.result()
    finally:
        node.destroy_client(client)


class SimEpisodeRunner:
    """Runs episodes on a running simulation bringup from ``node`` (spun by another thread).

    ``camera`` names the image topic prefix whose frames are kept (``<camera>/image_raw``).
    ``sim_fault()``, when given, says why the simulation stopped (empty while it runs): an
    in-process harness passes its sim loop's, so a stopped simulation (e.g. a lockstep time-out)
    ends the episode with an error instead of a wait on a clock that no longer moves.
    """

    def __init__(
        self, node: Node, camera: str = "front", sim_fault: Callable[[], str] | None = None
    ) -> None:
        self.node = node
        self._sim_fault = sim_fault
        self.frames = EpisodeFrames()
        self.motion = ArmMotion()
        node.create_subscription(Image, f"{camera}/image_raw", self.frames.on_image, qos.SENSORS)
        node.create_subscription(
            JointState, "joint_states", self.motion.on_joint_state, qos.SENSORS
        )

    def reset(self, task: str, seed: int, variant: str) -> ResetSimulation.Response:
        response = call_service(
            self.node,
            ResetSimulation,
            "reset_simulation",
            ResetSimulation.Request(task=task, variant=variant, seed=seed),
        )
        if not response.success:
            raise EpisodeError(
                f"reset to {task} seed {seed} ({variant}) failed: {response.message}"
            )
        self.frames.clear()
        return response

    def progress(self) -> GetTaskProgress.Response:
        return call_service(
            self.node, GetTaskProgress, "get_task_progress", GetTaskProgress.Request()
        )

    def run(
        self,
        task: str,
        seed: int,
        variant: str = "train",
        events: Sequence[str] | None = None,
        timeout_s: float = 60.0,
        server_wait_s: float = 60.0,
        on_reset: Callable[[ResetSimulation.Response, list[str]], None] | None = None,
        on_feedback: Callable[[ExecuteTask.Feedback], None] | None = None,
    ) -> RosEpisode:
        """Reset to ``(task, seed, variant)``, send the task (``events`` in order, or the sim's
        event decomposition when ``None``) and read the Task Progress when the goal ends."""
        reset = self.reset(task, seed, variant)
        instructions = list(events) if events is not None else list(reset.event_instructions)
        if on_reset is not None:
            on_reset(reset, instructions)
        self.motion.start()
        latencies_ms: list[float] = []

        def feedback(message: ExecuteTask.Feedback) -> None:
            latencies_ms.append(duration_to_ns(message.last_inference_latency) / 1e6)
            if on_feedback is not None:
                on_feedback(message)

        result = execute_task(
            self.node,
            reset.task_description,
            instructions,
            timeout_s=timeout_s,
            server_wait_s=server_wait_s,
            on_feedback=feedback,
            give_up=self._sim_fault,
        )
        arm_motion = self.motion.stop()
        progress = self.progress()
        return RosEpisode(
            task=task,
            seed=seed,
            variant=variant,
            task_description=reset.task_description,
            events=tuple(instructions),
            result=result,
            progress=float(progress.progress),
            points=int(progress.points),
            max_points=int(progress.max_points),
            criteria_met=tuple(progress.criteria_met),
            arm_motion_rad=arm_motion,
            chunk_latencies_ms=tuple(latencies_ms),
        )
