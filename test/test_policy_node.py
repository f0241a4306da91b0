"""The policy node over real rclpy/DDS: goals, feedback, chunks, cancel, time-out, conflicts, faults."""

from __future__ import annotations

import itertools
import threading

import pytest
from conftest import wait_for
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_msgs.msg import String
from synthetic_sensors import SyntheticSensors, sensor_parameters

from wallwm_core.config_loading import ConfigError
from wallwm_core.outcome import Outcome, PolicyState
from wallwm_core.policy import PolicyCapabilities
from wallwm_core.replay_policy import ReplayPolicy
from wallwm_msgs.msg import ActionChunk, PolicyStatus
from wallwm_ros import qos, send_goal
from wallwm_ros.conversions import chunk_from_msg
from wallwm_ros.policy_node import PolicyNode
from wallwm_ros.send_goal import NoServerError, execute_event, execute_task


class Observer:
    """Client-side node: records chunks and status, sends goals."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.chunks: list[ActionChunk] = []
        self.states: list[int] = []
        self.chunk_subscription = node.create_subscription(
            ActionChunk, "action_chunk", self.chunks.append, qos.COMMANDS
        )
        node.create_subscription(
            PolicyStatus, "policy_status", lambda m: self.states.append(m.state), qos.LATCHED
        )


def _start(ros_context, spinner, namespace, replay_file, policy=None, **params):
    overrides = [Parameter("policy_type", value="replay")]
    overrides += [Parameter("replay_file", value=str(replay_file))]
    overrides += [Parameter(name, value=value) for name, value in params.items()]
    server = spinner.add(
        PolicyNode(policy, namespace=namespace, context=ros_context, parameter_overrides=overrides)
    )
    observer = Observer(spinner.add(Node("observer", namespace=namespace, context=ros_context)))
    assert wait_for(lambda: observer.chunk_subscription.get_publisher_count() > 0)
    return server, observer


def test_event_succeeds_with_feedback_chunks_and_status(
    ros_context, spinner, namespace, replay_file
):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    feedback = []
    result = execute_event(observer.node, "reach", on_feedback=feedback.append)

    assert result.outcome == Outcome.SUCCEEDED
    assert result.chunks_executed >= 2  # 13 steps of 50 ms in chunks of 5 (time-indexed)
    assert wait_for(lambda: len(observer.chunks) == result.chunks_executed)
    chunks = [chunk_from_msg(m) for m in observer.chunks]
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert [c.ends_event for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert all(c.event_instruction == "reach" and c.event_id == chunks[0].event_id for c in chunks)
    # stamps are observation times: strictly increasing, and the last target is the scripted goal
    assert all(b.stamp_ns > a.stamp_ns for a, b in itertools.pairwise(chunks))
    assert chunks[-1].positions[-1, 0].tolist() == pytest.approx([0.4, 0.1, 0.2])
    assert [f.chunks_executed for f in feedback] == list(range(1, len(chunks) + 1))
    progress = [f.progress for f in feedback]
    assert progress == sorted(progress) and 0.0 <= progress[0] and progress[-1] <= 1.0
    assert wait_for(lambda: observer.states[-1:] == [PolicyState.IDLE])
    assert PolicyState.RUNNING in observer.states


def test_cancel_stops_chunk_production(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    result = execute_event(observer.node, "long wipe", cancel_after_s=0.5)

    assert result.outcome == Outcome.CANCELED
    assert "canceled" in result.message
    chunks_at_result = len(observer.chunks)
    assert chunks_at_result == result.chunks_executed < 80
    # no chunk is produced after the result (the next one would have been due within 0.25 s)
    assert not wait_for(lambda: len(observer.chunks) > chunks_at_result, timeout_s=0.6)


def test_timeout_ends_with_timed_out(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    result = execute_event(observer.node, "long wipe", timeout_s=0.4)
    assert result.outcome == Outcome.TIMED_OUT
    assert "timeout" in result.message

    result = execute_event(observer.node, "long wipe", max_duration_s=0.3)
    assert result.outcome == Outcome.TIMED_OUT
    assert "max duration" in result.message


def test_unknown_and_empty_instructions(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    result = execute_event(observer.node, "juggle")
    assert result.outcome == Outcome.ABORTED
    assert "juggle" in result.message and "reach" in result.message
    assert observer.chunks == []

    assert not execute_event(observer.node, "   ").accepted


def _lose_responses(monkeypatch, kind: str, count: int = 1) -> list[int]:
    """Make the client drop its first ``count`` responses of ``kind`` ("goal", "result"), as Fast
    DDS does when the server has not yet matched the client's response reader. Returns a list
    that grows by one per dropped response."""
    dropped: list[int] = []
    deliver = send_goal.SpinSafeActionClient.execute

    async def execute(self, taken_data):
        if kind in taken_data and len(dropped) < count:
            del taken_data[kind]
            dropped.append(1)
        await deliver(self, taken_data)

    monkeypatch.setattr(send_goal.SpinSafeActionClient, "execute", execute)
    return dropped


def test_a_lost_goal_response_is_followed_through_the_goal_status(
    ros_context, spinner, namespace, replay_file, monkeypatch
):
    """Under load the policy node logged "failed to send response (timeout)" and send_goal waited
    for a goal response that never came while the goal ran. The goal status topic shows it."""
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    dropped = _lose_responses(monkeypatch, "goal")
    feedback = []
    result = execute_event(observer.node, "reach", on_feedback=feedback.append)
    assert dropped == [1]
    assert result.outcome == Outcome.SUCCEEDED
    assert result.chunks_executed >= 2 and len(feedback) == result.chunks_executed


def test_a_lost_result_response_is_asked_for_again(
    ros_context, spinner, namespace, replay_file, monkeypatch
):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    dropped = _lose_responses(monkeypatch, "result")
    result = execute_event(observer.node, "reach")
    assert dropped == [1]
    assert result.outcome == Outcome.SUCCEEDED and result.chunks_executed >= 2


def test_an_unanswered_goal_request_ends_with_an_error_and_no_motion(
    ros_context, spinner, namespace, replay_file, monkeypatch
):
    """A rejected goal is never listed on the status topic: without its response the client
    gives up after server_wait_s, and a running goal would have been canceled."""
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    dropped = _lose_responses(monkeypatch, "goal")
    with pytest.raises(NoServerError, match="did not answer the goal request"):
        execute_event(observer.node, "   ", server_wait_s=3.0)
    assert dropped == [1] and observer.chunks == []


def test_an_accepted_goal_whose_answer_and_status_are_lost_is_canceled_by_its_id(
    ros_context, spinner, namespace, replay_file, monkeypatch
):
    """Neither the answer nor the goal's status reach the client: it gives up after server_wait_s
    and cancels the goal by its id, so the goal (30 s) does not go on unwatched."""
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    dropped = _lose_responses(monkeypatch, "goal")
    monkeypatch.setattr(send_goal._ServerWatch, "_on_goal_status", lambda self, msg: None)
    with pytest.raises(NoServerError, match="a cancel for the goal's id was sent"):
        execute_event(observer.node, "long wipe", server_wait_s=3.0)
    assert dropped == [1] and observer.chunks  # the goal was accepted and ran
    assert wait_for(lambda: observer.states[-1:] == [PolicyState.IDLE])  # and was canceled


def _run_in_thread(fn, *args, **kwargs):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", fn(*args, **kwargs)))
    thread.start()
    return thread, box


def test_second_goal_rejected_while_running(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file, goal_conflict="reject")
    thread, first = _run_in_thread(execute_event, observer.node, "long wipe", timeout_s=1.5)
    assert wait_for(lambda: len(observer.chunks) >= 1)

    second = execute_event(observer.node, "reach")
    thread.join()
    assert not second.accepted
    assert first["result"].outcome == Outcome.TIMED_OUT  # the first goal ran on untouched


def test_second_goal_preempts_when_configured(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file, goal_conflict="preempt")
    thread, first = _run_in_thread(execute_event, observer.node, "long wipe")
    assert wait_for(lambda: len(observer.chunks) >= 1)

    second = execute_event(observer.node, "reach")
    thread.join()
    assert first["result"].outcome == Outcome.CANCELED
    assert "preempted" in first["result"].message
    assert second.outcome == Outcome.SUCCEEDED
    instructions = [m.event_instruction for m in observer.chunks]
    # once the new event's chunks start, no chunk of the old event follows
    first_new = instructions.index("reach")
    assert set(instructions[first_new:]) == {"reach"}


class _FailingPolicy:
    """Delegates to a replay policy but raises on the n-th chunk, like a crashing model."""

    capabilities = PolicyCapabilities()

    def __init__(self, inner: ReplayPolicy, fail_on_call: int) -> None:
        self.inner = inner
        self.calls = 0
        self.fail_on_call = fail_on_call

    def start_event(self, instruction, event_id, max_duration_ns):
        self.calls = 0
        self.inner.start_event(instruction, event_id, max_duration_ns)

    def next_chunk(self, observation):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("CUDA error: device-side assert")
        return self.inner.next_chunk(observation)


def test_inference_failure_is_a_fault_and_node_recovers(
    ros_context, spinner, namespace, replay_file
):
    policy = _FailingPolicy(ReplayPolicy.from_yaml(replay_file), fail_on_call=2)
    _, observer = _start(ros_context, spinner, namespace, replay_file, policy=policy)
    result = execute_event(observer.node, "reach")

    assert result.outcome == Outcome.FAULT
    assert "device-side assert" in result.message
    assert result.chunks_executed == 1
    assert wait_for(lambda: PolicyState.FAULT in observer.states)

    policy.fail_on_call = -1
    assert execute_event(observer.node, "reach").outcome == Outcome.SUCCEEDED


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("goal_conflict", "maybe"),
        ("policy_type", "magic"),
        ("default_timeout", -1.0),
        ("replan_fraction", 0.0),
        ("torch_threads", -1),
    ],
)
def test_invalid_parameters_fail_at_start_naming_the_parameter(
    ros_context, replay_file, name, value
):
    overrides = [Parameter("policy_type", value="replay")]
    overrides += [Parameter("replay_file", value=str(replay_file)), Parameter(name, value=value)]
    with pytest.raises(ConfigError, match=name):
        PolicyNode(context=ros_context, parameter_overrides=overrides)


class _WarmingPolicy:
    """Delegates to a replay policy, offers a warm-up and records the order of the calls."""

    def __init__(self, inner: ReplayPolicy, warm_up=None) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.capabilities = PolicyCapabilities(
            warm_up=warm_up or (lambda: self.calls.append("warm_up"))
        )

    def start_event(self, instruction, event_id, max_duration_ns):
        self.calls.append("start_event")
        self.inner.start_event(instruction, event_id, max_duration_ns)

    def next_chunk(self, observation):
        return self.inner.next_chunk(observation)


def test_warm_up_runs_once_before_the_first_goal_and_is_reported(
    ros_context, spinner, namespace, replay_file
):
    policy = _WarmingPolicy(ReplayPolicy.from_yaml(replay_file))
    _, observer = _start(
        ros_context, spinner, namespace, replay_file, policy=policy, diagnostics_period=0.1
    )
    assert policy.calls == ["warm_up"]  # at start, before any goal could arrive
    arrays = []
    observer.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append, 10)
    assert execute_event(observer.node, "reach").outcome == Outcome.SUCCEEDED
    assert policy.calls == ["warm_up", "start_event"]

    def warm_up_values():
        return [
            kv.value
            for array in arrays
            for status in array.status
            if status.name.startswith(f"{namespace}/policy_node")
            for kv in status.values
            if kv.key == "warm_up_ms"
        ]

    assert wait_for(lambda: warm_up_values())
    assert float(warm_up_values()[-1]) >= 0.0


def test_a_failing_warm_up_stops_the_node_at_start(ros_context, replay_file):
    def fail() -> None:
        raise RuntimeError("out of memory")

    overrides = [Parameter("policy_type", value="replay")]
    overrides += [Parameter("replay_file", value=str(replay_file))]
    policy = _WarmingPolicy(ReplayPolicy.from_yaml(replay_file), warm_up=fail)
    with pytest.raises(ConfigError, match="warm-up inference failed: RuntimeError: out of memory"):
        PolicyNode(policy, context=ros_context, parameter_overrides=overrides)


def test_torch_threads_is_applied_when_the_model_loads(tmp_path):
    import torch

    from wallwm_core.checkpoint import init_checkpoint, save_checkpoint
    from wallwm_core.model.config import load_model_config
    from wallwm_core.wallwm_policy import WallWMPolicy
    from wallwm_ros.policy_node import PolicyNodeConfig, make_policy

    checkpoint = init_checkpoint(
        load_model_config("tiny"),
        cameras=["front"],
        joint_names=[f"j{i}" for i in range(8)],
        arm_names=["arm"],
        ee_frames=["tool0"],
        base_frame="base_link",
        image_size=(32, 32),
    )
    path = save_checkpoint(checkpoint, tmp_path / "tiny")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        policy = make_policy(PolicyNodeConfig(checkpoint=str(path), torch_threads=3))
        assert isinstance(policy, WallWMPolicy) and torch.get_num_threads() == 3
        make_policy(PolicyNodeConfig(checkpoint=str(path), torch_threads=0))
        assert torch.get_num_threads() == 3  # 0: left as torch has it
    finally:
        torch.set_num_threads(before)


def test_bad_replay_file_fails_at_start(ros_context, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "frame_id: base\nstep_period: 0.05\nchunk_steps: 5\narms: []\nevents: []\nextra: 1\n"
    )
    with pytest.raises(ConfigError, match="extra"):
        PolicyNode(
            context=ros_context,
            parameter_overrides=[
                Parameter("policy_type", value="replay"),
                Parameter("replay_file", value=str(bad)),
            ],
        )
    with pytest.raises(ConfigError, match="cannot read"):
        PolicyNode(
            context=ros_context,
            parameter_overrides=[
                Parameter("policy_type", value="replay"),
                Parameter("replay_file", value=str(tmp_path / "missing.yaml")),
            ],
        )


def test_task_runs_given_events_in_order_with_feedback(
    ros_context, spinner, namespace, replay_file
):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    feedback = []
    result = execute_task(
        observer.node, "reach twice", ["reach", "reach"], on_feedback=feedback.append
    )

    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert [(e[0], e[1]) for e in result.events] == [("reach", Outcome.SUCCEEDED)] * 2
    assert wait_for(lambda: len({m.event_id for m in observer.chunks}) == 2)
    assert [f.event_index for f in feedback] == sorted(f.event_index for f in feedback)
    assert {f.event_index for f in feedback} == {0, 1}
    assert all(f.events_total == 2 for f in feedback)
    task_progress = [f.progress for f in feedback]
    assert task_progress == sorted(task_progress) and task_progress[-1] > 0.5


def test_task_unknown_event_aborts_and_no_proposer_rejects(
    ros_context, spinner, namespace, replay_file
):
    _, observer = _start(ros_context, spinner, namespace, replay_file)
    result = execute_task(observer.node, "mixed", ["reach", "juggle", "reach"])
    assert result.outcome == Outcome.ABORTED
    assert [e[1] for e in result.events] == [Outcome.SUCCEEDED, Outcome.ABORTED]
    # the replay policy cannot propose events: a task without events is refused up front
    assert not execute_task(observer.node, "do something useful").accepted


def test_task_cancel_and_conflict_with_event_goals(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file, goal_conflict="reject")
    thread, box = _run_in_thread(
        execute_task, observer.node, "wipe", ["long wipe"], cancel_after_s=0.6
    )
    assert wait_for(lambda: len(observer.chunks) >= 1)
    assert not execute_event(observer.node, "reach").accepted  # one goal at a time, both servers
    thread.join()
    assert box["result"].outcome == Outcome.CANCELED
    assert [e[1] for e in box["result"].events] == [Outcome.CANCELED]


def test_executor_keeps_serving_while_the_policy_infers(
    ros_context, spinner, namespace, replay_file
):
    """A model stuck in inference must not stall subscriptions: it runs on a worker thread."""
    inferring, release = threading.Event(), threading.Event()

    class BlockingPolicy(ReplayPolicy):
        def next_chunk(self, observation):
            inferring.set()
            release.wait(timeout=20.0)
            return super().next_chunk(observation)

    policy = BlockingPolicy(ReplayPolicy.from_yaml(replay_file)._config)
    server, observer = _start(ros_context, spinner, namespace, replay_file, policy=policy)
    pings = []
    server.create_subscription(String, "ping", pings.append, 10)
    publisher = observer.node.create_publisher(String, "ping", 10)
    assert wait_for(lambda: publisher.get_subscription_count() > 0)
    thread, box = _run_in_thread(execute_event, observer.node, "reach")
    assert inferring.wait(timeout=10.0)
    for index in range(5):
        publisher.publish(String(data=str(index)))
    # the pings are handled while next_chunk is still blocked
    assert wait_for(lambda: len(pings) == 5)
    assert "result" not in box and not release.is_set()
    release.set()
    thread.join()
    assert box["result"].outcome == Outcome.SUCCEEDED


def test_diagnostics_report_state_and_counts(ros_context, spinner, namespace, replay_file):
    _, observer = _start(ros_context, spinner, namespace, replay_file, diagnostics_period=0.1)
    arrays = []
    observer.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append, 10)
    assert execute_event(observer.node, "reach").outcome == Outcome.SUCCEEDED

    def ours():
        return [
            {kv.key: kv.value for kv in status.values}
            for array in arrays
            for status in array.status
            if status.name.startswith(f"{namespace}/policy_node")
        ]

    assert wait_for(lambda: any(v["goals_succeeded"] == "1" for v in ours()))
    latest = ours()[-1]
    assert latest["state"] == "IDLE" and int(latest["chunks_published"]) >= 3
    assert float(latest["last_inference_latency_ms"]) > 0.0


def _start_with_sensors(ros_context, spinner, namespace, replay_file, **params):
    server, observer = _start(
        ros_context, spinner, namespace, replay_file, **sensor_parameters(), **params
    )
    sensors = SyntheticSensors(
        spinner.add(Node("sensors", namespace=namespace, context=ros_context))
    )
    # A goal sent before the node has heard its sensors faults "nothing received yet" (seen on a
    # loaded machine): wait until they are matched and a few frames went out since.
    assert wait_for(sensors.connected)
    frames = sensors.frames_published()
    assert wait_for(lambda: sensors.frames_published() >= frames + 3)
    return server, observer, sensors


def test_chunks_are_stamped_with_synchronised_observations(
    ros_context, spinner, namespace, replay_file
):
    _, observer, sensors = _start_with_sensors(ros_context, spinner, namespace, replay_file)
    result = execute_event(observer.node, "reach")

    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert wait_for(lambda: len(observer.chunks) == result.chunks_executed)
    stamps = [chunk_from_msg(m).stamp_ns for m in observer.chunks]
    assert set(stamps) <= set(sensors.image_stamps)  # each chunk carries its frame set's time
    assert stamps == sorted(set(stamps))


def test_camera_stopping_mid_goal_faults_without_chunks(
    ros_context, spinner, namespace, replay_file
):
    _, observer, sensors = _start_with_sensors(
        ros_context, spinner, namespace, replay_file, stale_hold_timeout=0.3
    )
    thread, box = _run_in_thread(execute_event, observer.node, "long wipe")
    assert wait_for(lambda: len(observer.chunks) >= 2)
    sensors.running_cameras.discard("wrist")
    stop_ns = sensors.node.get_clock().now().nanoseconds
    thread.join()

    result = box["result"]
    assert result.outcome == Outcome.FAULT
    assert "wrist" in result.message
    late = [m for m in observer.chunks if chunk_from_msg(m).stamp_ns > stop_ns]
    assert late == []
    assert wait_for(lambda: observer.states[-1:] == [PolicyState.FAULT])
    assert PolicyState.HOLDING in observer.states

    sensors.running_cameras.add("wrist")  # inputs come back: the next goal runs normally
    assert execute_event(observer.node, "reach").outcome == Outcome.SUCCEEDED


def test_malformed_images_fault_the_goal_and_the_node_stays_up(
    ros_context, spinner, namespace, replay_file
):
    _, observer, sensors = _start_with_sensors(
        ros_context, spinner, namespace, replay_file, stale_hold_timeout=0.3
    )
    sensors.malformed = True
    frames = sensors.frames_published()  # the good frames go stale (0.3 s) before the goal
    assert wait_for(lambda: sensors.frames_published() >= frames + 8)
    faults = []
    observer.node.create_subscription(
        PolicyStatus, "policy_status", lambda m: faults.append(m.fault), qos.LATCHED
    )
    result = execute_event(observer.node, "reach")

    assert result.outcome == Outcome.FAULT and "truncated" in result.message
    assert observer.chunks == []
    assert wait_for(lambda: any("truncated" in f for f in faults))
    sensors.malformed = False
    assert execute_event(observer.node, "reach").outcome == Outcome.SUCCEEDED
