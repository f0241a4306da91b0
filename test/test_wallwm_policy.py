"""WallWMPolicy through the EventPolicy protocol, its API, observation checks and devices."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from wallwm_core.action_chunk import ActionChunk
from wallwm_core.checkpoint import Checkpoint, init_checkpoint
from wallwm_core.event_execution import ExecutionLimits, run_event
from wallwm_core.inference import InferenceConfig, SamplerConfig, UnifiedConfig
from wallwm_core.inference.observation import ObservationError
from wallwm_core.inference.runtime import select_runtime
from wallwm_core.model.config import load_model_config
from wallwm_core.outcome import Outcome
from wallwm_core.planner import EventRecord
from wallwm_core.policy import Observation, PolicyStep, UnknownInstructionError
from wallwm_core.training.batch import look_at_camera
from wallwm_core.vlm import load_vlm_config
from wallwm_core.wallwm_policy import WallWMPolicy

TINY = load_model_config("tiny")
CAMERAS = ("front", "overhead", "wrist")
JOINTS = tuple(f"joint_{i}" for i in range(1, 9))
IMAGE_HW = (48, 64)
STEP_NS = 50_000_000
FAST = InferenceConfig(sampler=SamplerConfig(video_steps=2, action_steps=2))


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def checkpoint(vlm: bool = False) -> Checkpoint:
    return randomise_zero_inits(
        init_checkpoint(
            TINY,
            cameras=CAMERAS,
            joint_names=JOINTS,
            arm_names=("arm",),
            ee_frames=("tool0",),
            base_frame="base_link",
            image_size=(32, 32),
            seed=1,
            vlm_config=load_vlm_config("vlm_tiny") if vlm else None,
            inference=FAST,
        )
    )


def randomise_zero_inits(checkpoint: Checkpoint) -> Checkpoint:
    """Random values for the zero-initialised output heads, gates and view embeddings, so that
    outputs depend on the inputs (a fresh model's action and video heads output zeros)."""
    generator = torch.Generator().manual_seed(5)
    state = dict(checkpoint.model_state)
    for name, tensor in state.items():
        if (
            "cross_view_gate" in name
            or "view_embedding" in name
            or name.endswith(("head.head.weight", "action_out.weight"))
        ):
            state[name] = 0.5 * torch.randn(tensor.shape, generator=generator)
    return dataclasses.replace(checkpoint, model_state=state)


@pytest.fixture(scope="module")
def policy() -> WallWMPolicy:
    return WallWMPolicy.from_checkpoint(checkpoint(), device="cpu")


@pytest.fixture(scope="module")
def vlm_policy() -> WallWMPolicy:
    return WallWMPolicy.from_checkpoint(checkpoint(vlm=True), device="cpu")


def observation(stamp_ns: int = 1_000_000_000, seed: int = 0, **changes) -> Observation:
    rng = np.random.default_rng(seed)
    cameras = {
        name: look_at_camera((np.cos(a), np.sin(a), 0.8), (0.0, 0.0, 0.0), IMAGE_HW, 40.0)
        for name, a in zip(CAMERAS, (0.0, 0.6, 1.2), strict=True)
    }
    base = Observation(
        stamp_ns=stamp_ns,
        images={n: rng.integers(0, 256, (*IMAGE_HW, 3), dtype=np.uint8) for n in CAMERAS},
        joint_positions=rng.normal(size=len(JOINTS)),
        joint_names=JOINTS,
        cameras=cameras,
    )
    return dataclasses.replace(base, **changes)


def set_event_length(policy: WallWMPolicy, seconds: float) -> None:
    """Make the Δt head predict ``seconds`` for every input (zero last weight, fitted bias)."""
    last = policy.model.event_length_head.mlp[-1]
    scaled = seconds / policy.model.config.objective.event_length_scale_s
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(math.expm1(scaled)))  # inverse softplus


def check_step(step: PolicyStep, obs: Observation) -> ActionChunk:
    chunk = step.chunk
    assert chunk.stamp_ns == obs.stamp_ns
    assert chunk.step_period_ns == STEP_NS
    assert chunk.frame_id == "base_link"
    assert chunk.arm_names == ("arm",) and chunk.ee_frames == ("tool0",)
    assert 0.0 <= step.progress <= 1.0
    assert step.predicted_remaining_ns >= 0
    return chunk


def test_event_protocol_replans_and_ends_the_event(policy: WallWMPolicy) -> None:
    policy.start_event("open the drawer", event_id=4, max_duration_ns=10_000_000_000)
    set_event_length(policy, 1.0)  # 20 steps > limits.max_action_steps = 12
    first_obs = observation(1_000_000_000)
    first = policy.next_chunk(first_obs)
    chunk = check_step(first, first_obs)
    assert chunk.num_steps == TINY.limits.max_action_steps and not chunk.ends_event
    assert chunk.event_id == 4 and chunk.event_instruction == "open the drawer"
    assert chunk.chunk_index == 0
    assert first.progress == 0.0
    assert first.predicted_remaining_ns == pytest.approx(1e9, rel=1e-5)

    set_event_length(policy, 0.3)  # the rest fits: 6 steps, event ends
    later_obs = observation(1_500_000_000, seed=1)
    later = policy.next_chunk(later_obs)
    chunk = check_step(later, later_obs)
    assert chunk.num_steps == 6 and chunk.ends_event and chunk.chunk_index == 1
    assert later.progress == pytest.approx(0.5 / 0.8, rel=1e-5)


def test_chunks_respect_the_event_time_budget(policy: WallWMPolicy) -> None:
    set_event_length(policy, 1.0)
    policy.start_event("wipe", event_id=1, max_duration_ns=200_000_000)
    step = policy.next_chunk(observation())
    assert step.chunk.num_steps == 4 and not step.chunk.ends_event


class FakeIO:
    """A simulated clock (5 ms per reading) with an observation always available."""

    def __init__(self) -> None:
        self.now = 1_000_000_000
        self.chunks: list[ActionChunk] = []

    def now_ns(self) -> int:
        self.now += 5_000_000
        return self.now

    def fresh_observation(self, newer_than_ns: int) -> Observation | str:
        if self.now <= newer_than_ns:
            return "no new observation"
        return observation(self.now)

    def interruption(self):
        return None

    def publish_chunk(self, chunk: ActionChunk) -> None:
        self.chunks.append(chunk)

    def cancel_chunks(self, event_id: int) -> None:
        pass

    def report(self, progress) -> None:
        pass

    def set_state(self, *args) -> None:
        pass


def test_runs_under_the_event_execution_loop(policy: WallWMPolicy) -> None:
    set_event_length(policy, 0.4)
    io = FakeIO()
    limits = ExecutionLimits(
        timeout_ns=10_000_000_000, max_duration_ns=5_000_000_000, poll_period_s=0.0
    )
    result = run_event(policy, "press the red button", 9, limits, io)
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert io.chunks[-1].ends_event and io.chunks[-1].num_steps == 8


def test_protocol_misuse_is_reported(policy: WallWMPolicy) -> None:
    fresh = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu")
    with pytest.raises(RuntimeError, match="before start_event"):
        fresh.next_chunk(observation())
    with pytest.raises(UnknownInstructionError, match="non-empty"):
        policy.start_event("  ", event_id=1, max_duration_ns=1)


def without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


def bad_observations() -> dict[str, tuple[Observation, str]]:
    good = observation()
    images, cameras = dict(good.images), dict(good.cameras)
    joints = np.array(good.joint_positions)
    nan_joints = joints.copy()
    nan_joints[2] = np.nan
    other_size = look_at_camera((1.0, 0.0, 0.8), (0.0, 0.0, 0.0), (10, 10), 10.0)
    return {
        "missing camera": (
            dataclasses.replace(good, images=without(images, "wrist")),
            "camera 'wrist' is missing from the observation",
        ),
        "float image": (
            dataclasses.replace(good, images={**images, "front": images["front"] / 255.0}),
            "camera 'front': image must be uint8 [H, W, 3], got dtype float64",
        ),
        "grayscale image": (
            dataclasses.replace(good, images={**images, "front": images["front"][..., 0]}),
            "camera 'front': image must be [H, W, 3] (colour), got shape (48, 64)",
        ),
        "wrong joint count": (
            dataclasses.replace(good, joint_positions=joints[:7], joint_names=()),
            "wrong joint count: 7 joint positions, the checkpoint expects 8",
        ),
        "missing joint": (
            dataclasses.replace(good, joint_positions=joints[:7], joint_names=JOINTS[:7]),
            "joint(s) ['joint_8'] missing from the observation",
        ),
        "NaN joint": (
            dataclasses.replace(good, joint_positions=nan_joints),
            "joint position(s) of ['joint_3'] are NaN or infinite",
        ),
        "missing calibration": (
            dataclasses.replace(good, cameras=without(cameras, "overhead")),
            "camera 'overhead' has no calibration",
        ),
        "calibration of another size": (
            dataclasses.replace(good, cameras={**cameras, "front": other_size}),
            "camera 'front': calibration is for 10x10 but the image is 48x64",
        ),
    }


@pytest.mark.parametrize("case", sorted(bad_observations()))
def test_bad_observations_are_named(policy: WallWMPolicy, case: str) -> None:
    bad, message = bad_observations()[case]
    policy.start_event("open the drawer", event_id=2, max_duration_ns=10**10)
    with pytest.raises(ObservationError) as error:
        policy.next_chunk(bad)
    assert message in str(error.value)


def test_joint_order_and_image_views(policy: WallWMPolicy) -> None:
    """Joints given in another order and read-only, non-contiguous image views are fine."""
    good = observation()
    order = np.arange(len(JOINTS))[::-1]
    permuted = dataclasses.replace(
        good,
        joint_positions=np.asarray(good.joint_positions)[order],
        joint_names=tuple(JOINTS[i] for i in order),
    )
    views = {}
    for name, image in good.images.items():
        wide = np.repeat(image, 2, axis=1)
        wide.setflags(write=False)
        views[name] = wide[:, ::2]  # the same pixels as a strided, read-only view
    strided = dataclasses.replace(good, images=views)
    reference = policy.infer_event(good, "pick up the cube", seed=3).tokens
    shuffled = dataclasses.replace(good, joint_positions=np.asarray(good.joint_positions)[order])
    assert not np.array_equal(
        policy.infer_event(shuffled, "pick up the cube", seed=3).tokens, reference
    )
    np.testing.assert_array_equal(
        policy.infer_event(permuted, "pick up the cube", seed=3).tokens, reference
    )
    np.testing.assert_array_equal(
        policy.infer_event(strided, "pick up the cube", seed=3).tokens, reference
    )


def test_predict_event_and_chunk_return_typed_chunks(vlm_policy: WallWMPolicy) -> None:
    set_event_length(vlm_policy, 0.35)
    obs = observation()
    chunk = vlm_policy.predict_event(obs, "open the drawer", event_id=7)
    assert isinstance(chunk, ActionChunk) and chunk.num_steps == 7 and chunk.ends_event
    assert chunk.event_id == 7 and chunk.stamp_ns == obs.stamp_ns
    detailed = vlm_policy.infer_event(obs, "open the drawer", decode_video=True)
    assert detailed.tokens.shape == (7, TINY.action.token_dim)
    assert detailed.future_latents.shape == (3, 2, TINY.codec.latent_channels, 4, 4)
    assert detailed.frames.dtype == np.uint8 and detailed.frames.shape == (3, 2, 32, 32, 3)
    assert detailed.event_length_s == pytest.approx(0.35, rel=1e-4)

    unified = vlm_policy.predict_chunk(obs, "open the drawer")
    assert unified.num_steps == vlm_policy.inference.unified.chunk_steps
    condition = vlm_policy.staircase_condition("tidy up", ["open the drawer"], obs)
    assert condition.latents.shape[:2] == (1, 4)
    staircase = vlm_policy.infer_chunk(obs, staircase=condition, estimate_event_length=True)
    assert staircase.chunk.num_steps == 7 and staircase.covers_event
    with pytest.raises(ValueError, match="exactly one"):
        vlm_policy.predict_chunk(obs)


def test_unified_mode_policy_uses_history_frames() -> None:
    inference = InferenceConfig(
        mode="unified",
        sampler=SamplerConfig(video_steps=1, action_steps=1),
        unified=UnifiedConfig(history_frames=1, future_frames=2, chunk_steps=8),
    )
    policy = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu", inference=inference)
    set_event_length(policy, 1.0)
    policy.start_event("wipe", event_id=1, max_duration_ns=10**10)
    first = policy.next_chunk(observation(1_000_000_000))
    assert first.chunk.num_steps == 8 and not first.chunk.ends_event
    encoded = policy._encode(observation(1_200_000_000))  # one latent period later
    _, mask = policy._context(encoded, history_frames=1)
    assert mask is None  # the history slot found the earlier observation
    set_event_length(policy, 0.2)
    last = policy.next_chunk(observation(1_400_000_000))
    assert last.chunk.num_steps == 4 and last.chunk.ends_event

    lonely = policy._encode(observation(9_000_000_000))
    _, mask = policy._context(lonely, history_frames=1)
    assert mask is not None and not bool(mask[:, :, 0].any()) and bool(mask[:, :, 1].all())


def test_only_a_vlm_checkpoint_offers_a_proposer(
    policy: WallWMPolicy, vlm_policy: WallWMPolicy
) -> None:
    assert policy.capabilities.proposer is None
    with pytest.raises(RuntimeError, match="no VLM"):
        policy.propose_next_event("tidy up", ())
    proposer = vlm_policy.capabilities.proposer
    assert proposer is not None
    vlm_policy.infer_event(observation(), "open the drawer")  # gives the VLM images
    history = (EventRecord(0, "open the drawer", 1, Outcome.SUCCEEDED, "", 0, 1, 1),)
    proposal = proposer("tidy up", history)
    assert proposal is None or isinstance(proposal, str)
    with pytest.raises(RuntimeError, match="no VLM"):
        policy.staircase_condition("tidy up")


def test_same_seed_gives_the_same_chunks() -> None:
    first = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu")
    second = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu")
    for candidate in (first, second):
        candidate.start_event("open the drawer", event_id=5, max_duration_ns=10**10)
    a = first.next_chunk(observation()).chunk
    b = second.next_chunk(observation()).chunk
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.quaternions, b.quaternions)


def test_warm_up_leaves_the_event_history_and_noise_untouched() -> None:
    """A warm-up in the middle of an event (history frames in use) changes no later chunk."""
    inference = InferenceConfig(
        mode="unified",
        sampler=SamplerConfig(video_steps=1, action_steps=1),
        unified=UnifiedConfig(history_frames=1, future_frames=2, chunk_steps=8),
    )
    warmed, fresh = (
        WallWMPolicy.from_checkpoint(checkpoint(), device="cpu", inference=inference)
        for _ in range(2)
    )
    for candidate in (warmed, fresh):
        candidate.start_event("wipe", event_id=3, max_duration_ns=10**10)
        candidate.next_chunk(observation(1_000_000_000))
    warmed.warm_up()
    a = warmed.next_chunk(observation(1_200_000_000, seed=1)).chunk
    b = fresh.next_chunk(observation(1_200_000_000, seed=1)).chunk
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.quaternions, b.quaternions)
    assert list(warmed._text_cache) == ["wipe"]


def test_device_and_dtype_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = select_runtime("cpu")
    assert runtime.device.type == "cpu" and runtime.dtype == torch.float32
    assert select_runtime("cpu", "bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        select_runtime("cpu", "int8")
    with pytest.raises(ValueError, match="device must be"):
        select_runtime("meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    automatic = select_runtime()
    assert automatic.device.type == "cpu" and automatic.dtype == torch.float32
    with pytest.raises(ValueError, match="CUDA is not available"):
        select_runtime("cuda")


def test_cpu_bfloat16_matches_float32_within_bf16_precision() -> None:
    """bf16 on CPU gives the float32 result up to bf16 rounding (only finiteness was checked).

    Same checkpoint, observation and noise seed: tokens and tool positions agree within 0.1
    (measured 0.03; tokens span about +-8, and another noise seed moves them by about 5)."""
    policy = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu", dtype="bfloat16")
    assert policy.dtype == torch.bfloat16
    reference = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu")
    assert reference.dtype == torch.float32
    for candidate in (policy, reference):
        set_event_length(candidate, 0.4)
    low = policy.infer_event(observation(), "open the drawer", seed=2)
    full = reference.infer_event(observation(), "open the drawer", seed=2)
    assert low.chunk.num_steps == full.chunk.num_steps == 8
    np.testing.assert_allclose(low.tokens, full.tokens, atol=0.1)
    np.testing.assert_allclose(low.chunk.positions, full.chunk.positions, atol=0.1)
    other = reference.infer_event(observation(), "open the drawer", seed=3)
    assert np.max(np.abs(other.tokens - full.tokens)) > 1.0  # the tolerance does discriminate


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bfloat16_path() -> None:
    policy = WallWMPolicy.from_checkpoint(checkpoint())  # automatic: CUDA + bf16
    assert policy.device.type == "cuda" and policy.dtype == torch.bfloat16
    reference = WallWMPolicy.from_checkpoint(checkpoint(), device="cpu")
    for candidate in (policy, reference):
        set_event_length(candidate, 0.4)
    gpu = policy.infer_event(observation(), "open the drawer", seed=2, decode_video=True)
    cpu = reference.infer_event(observation(), "open the drawer", seed=2)
    assert gpu.chunk.num_steps == cpu.chunk.num_steps == 8
    assert np.all(np.isfinite(gpu.tokens)) and gpu.frames is not None
    np.testing.assert_allclose(gpu.tokens, cpu.tokens, atol=0.1)  # same noise, bf16 arithmetic
