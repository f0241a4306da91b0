"""Per-chunk WALL-WM inference latency on the CPU: event mode (video features once vs naive),
the future video predicted vs read as noise (``sampler.future_video``), latency vs denoising
steps, unified mode, peak memory.

    python bench/bench_inference.py [--configs tiny small] [--repeats 5] [--threads 1]
                                    [--step-counts 1 2 4 8 16]

Everything is timed through :class:`wallwm_core.wallwm_policy.WallWMPolicy` on a randomly
initialised checkpoint, so a figure is a whole chunk: observation checks, resize + codec
encode, text (cached), the Δt head, video denoising, the anchor video pass, action denoising
and tokens -> poses. The Δt head is pinned so every event chunk has the same length.

Per config (views, image size, event steps below): median wall time and, with one thread,
median thread CPU time (steadier on a shared machine); the compared variants are timed in
alternation so load changes hit both alike. "cached" runs the video tower once per chunk at
the anchor noise level and reuses its features for every action step; "naive" re-runs it at
every action step. The last table isolates the action phase (the part the cache changes).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from wallwm_core.checkpoint import init_checkpoint
from wallwm_core.inference import InferenceConfig, SamplerConfig, UnifiedConfig, WindowSampler
from wallwm_core.inference.sampler import WindowNoise
from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import parameter_counts
from wallwm_core.policy import Observation
from wallwm_core.training.batch import look_at_camera
from wallwm_core.wallwm_policy import WallWMPolicy


@dataclasses.dataclass(frozen=True)
class Setting:
    views: int
    image_hw: tuple[int, int]
    event_steps: int  # action steps of the benchmarked event chunk
    video_steps: int = 8
    action_steps: int = 10


SETTINGS = {
    "tiny": Setting(views=3, image_hw=(64, 64), event_steps=12),
    "small": Setting(views=2, image_hw=(64, 64), event_steps=40),
    # The shipped checkpoint's model and sampler (docs/results.md).
    "cpu": Setting(views=3, image_hw=(64, 64), event_steps=32, video_steps=4),
}
INSTRUCTION = "open the top drawer"


def medians_ms(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """(median wall ms, median thread-CPU ms) per function, timed in alternation (1 warm-up)."""
    for fn in fns:
        fn()
    samples: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            out.append((time.perf_counter() - wall, time.thread_time() - cpu))
    return [
        (1e3 * statistics.median(s[0] for s in out), 1e3 * statistics.median(s[1] for s in out))
        for out in samples
    ]


def observation(setting: Setting, cameras: tuple[str, ...], joints: tuple[str, ...]) -> Observation:
    rng = np.random.default_rng(0)
    image_hw = (480, 640)  # camera resolution; resized to the model's input
    return Observation(
        stamp_ns=1_000_000_000,
        images={c: rng.integers(0, 256, (*image_hw, 3), dtype=np.uint8) for c in cameras},
        joint_positions=rng.normal(size=len(joints)),
        joint_names=joints,
        cameras={
            c: look_at_camera((math.cos(a), math.sin(a), 0.8), (0, 0, 0), image_hw, 500.0)
            for c, a in zip(cameras, np.linspace(0.0, 1.2, len(cameras)), strict=True)
        },
    )


def pin_event_length(policy: WallWMPolicy, steps: int) -> None:
    seconds = steps / policy.model.config.action.control_hz
    last = policy.model.event_length_head.mlp[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(
            math.log(math.expm1(seconds / policy.model.config.objective.event_length_scale_s))
        )


def fmt(ms: tuple[float, float], one_thread: bool) -> str:
    return f"{ms[0]:9.1f}" + (f" ({ms[1]:8.1f})" if one_thread else "")


def bench(name: str, repeats: int, step_counts: list[int], one_thread: bool) -> None:
    setting = SETTINGS[name]
    config = load_model_config(name)
    cameras = ("front", "overhead", "wrist", "side")[: setting.views]
    joints = tuple(f"joint_{i}" for i in range(1, config.action.state_dim + 1))
    checkpoint = init_checkpoint(
        config, cameras, joints, ("arm",), ("tool0",), "base_link", setting.image_hw
    )
    sampler = SamplerConfig(setting.video_steps, setting.action_steps)
    policy = WallWMPolicy.from_checkpoint(
        checkpoint, device="cpu", inference=InferenceConfig(sampler=sampler)
    )
    pin_event_length(policy, setting.event_steps)
    obs = observation(setting, cameras, joints)
    k_p = config.action.steps_per_latent_frame
    future = -(-setting.event_steps // k_p)
    latent = (setting.image_hw[0] // 8, setting.image_hw[1] // 8)
    tokens = setting.views * (1 + future) * (latent[0] // 2) * (latent[1] // 2)
    counts = parameter_counts(policy.model)
    print(
        f"\n## {name}: {counts['total'] / 1e6:.2f} M parameters; {setting.views} views "
        f"{setting.image_hw[0]}x{setting.image_hw[1]}, event of {setting.event_steps} steps -> "
        f"1 + {future} latent frames, {tokens} video tokens; sampler {setting.video_steps} video "
        f"+ {setting.action_steps} action steps"
    )
    unit = "ms wall (thread CPU)" if one_thread else "ms wall"

    def run(video_steps: int, action_steps: int, path: str, mode: str = "event", video="predicted"):
        sampler = SamplerConfig(video_steps, action_steps, path, future_video=video)
        unified = UnifiedConfig(0, future, setting.event_steps)

        def call() -> None:
            policy.inference = InferenceConfig(mode=mode, sampler=sampler, unified=unified)
            if mode == "event":
                chunk = policy.predict_event(obs, INSTRUCTION, seed=0)
            else:
                chunk = policy.predict_chunk(obs, INSTRUCTION, seed=0)
            assert chunk.num_steps == setting.event_steps

        return call

    cached, naive, unified, noise = medians_ms(
        [
            run(setting.video_steps, setting.action_steps, "cached"),
            run(setting.video_steps, setting.action_steps, "naive"),
            run(setting.video_steps, setting.action_steps, "cached", mode="unified"),
            # Timing only: a model is served this way when trained with future-video dropout.
            run(setting.video_steps, setting.action_steps, "cached", video="noise"),
        ],
        repeats,
    )
    print(f"\nper chunk, {unit}:")
    print(f"  event mode, video features once (cached): {fmt(cached, one_thread)}")
    print(f"  event mode, naive (video tower per step): {fmt(naive, one_thread)}")
    print(
        f"  naive / cached: {naive[0] / cached[0]:.2f}x wall"
        + (f", {naive[1] / cached[1]:.2f}x CPU" if one_thread else "")
    )
    print(f"  unified mode (cached, same window):       {fmt(unified, one_thread)}")
    print(f"  event mode, future video as noise:        {fmt(noise, one_thread)}")
    print(f"  predicted / noise future: {cached[0] / noise[0]:.2f}x wall")

    print(f"\nlatency vs denoising steps n (video and action samplers both n steps), {unit}:")
    print("    n |    cached            |    naive             | naive/cached")
    for n in step_counts:
        c, v = medians_ms([run(n, n, "cached"), run(n, n, "naive")], max(1, repeats // 2))
        print(
            f"  {n:3d} | {fmt(c, one_thread):20s} | {fmt(v, one_thread):20s} | {v[0] / c[0]:.2f}x"
        )

    # The action phase alone (video already sampled): where the cache matters.
    inputs_policy = policy
    with inputs_policy.runtime.inference_context():
        encoded = inputs_policy.encoder.encode(obs)
    inputs = inputs_policy._inputs(encoded, inputs_policy.encode_instruction(INSTRUCTION), 0)
    window_sampler = WindowSampler(policy.model, SamplerConfig(1, setting.action_steps))
    steps = torch.tensor([setting.event_steps])
    video_mask, action_mask = window_sampler.window_masks(inputs, steps, future)
    latent_shape = (1, setting.views, future, config.codec.latent_channels, *latent)
    noise = WindowNoise.draw(
        latent_shape, (1, setting.event_steps, config.action.token_dim), torch.Generator(), "cpu"
    )
    with torch.inference_mode():
        anchor, times = window_sampler.anchor_video_input(inputs, noise.video, noise.anchor)

    def actions(path: str):
        def call() -> None:
            with torch.inference_mode():
                window_sampler.sample_actions(
                    inputs, video_mask, anchor, times, action_mask, noise.actions, path
                )

        return call

    c, v = medians_ms([actions("cached"), actions("naive")], repeats)
    print(f"\naction phase only ({setting.action_steps} Euler steps), {unit}:")
    print(
        f"  cached {fmt(c, one_thread)} | naive {fmt(v, one_thread)} | naive/cached {v[0] / c[0]:.2f}x"
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS so far: {peak_mb:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "small"], choices=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--step-counts", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# WALL-WM inference latency, CPU, torch {torch.__version__}, {args.threads} thread(s)")
    for name in args.configs:
        bench(name, args.repeats, args.step_counts, one_thread=args.threads == 1)


if __name__ == "__main__":
    main()
