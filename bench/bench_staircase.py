"""Latency of Staircase Decoding vs the naive K x L latent loop (CPU by default).

    python bench/bench_staircase.py [--configs vlm_tiny vlm_small] [--latents 1 2 4 8]
                                    [--repeats 15] [--threads 1] [--device cpu]

For each config and K: median per-call latency of ``WallVLM.staircase_latents`` and
``WallVLM.naive_latents`` (batch 1, two camera views when the config has vision, a prompt with
three done events), their ratio, and the layer work counted by ``CountingLM``.

The two are timed alternately, so a machine whose load changes treats both alike. With one
thread (the default) the calling thread's CPU time is reported too: on a shared machine it
is steadier than wall time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wallwm_core.vlm import CountingLM, TinyCausalLM, WallVLM, load_vlm_config
from wallwm_core.vlm.staircase import latent_layer_passes

TASK = "put the red cup on the shelf next to the blue plate"
DONE = ("open the cabinet door", "pick up the red cup", "move the cup to the shelf")


def alternate_medians_ms(fns, repeats: int) -> list[tuple[float, float]]:
    """(median wall ms, median thread-CPU ms) per function, timed in alternation."""
    for fn in fns:
        fn()
    samples: list[list[tuple[float, float]]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            wall, cpu = time.perf_counter(), time.thread_time()
            fn()
            out.append((time.perf_counter() - wall, time.thread_time() - cpu))
    return [
        (1e3 * statistics.median(w for w, _ in out), 1e3 * statistics.median(c for _, c in out))
        for out in samples
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["vlm_tiny", "vlm_small"])
    parser.add_argument("--latents", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    header = (
        f"{'config':<10} {'params':>7} {'T':>4} {'K':>2} {'stair ms':>9} {'naive ms':>9} "
        f"{'ratio':>6} {'stair cpu':>9} {'naive cpu':>9} {'ratio':>6} "
        f"{'calls s/n':>10} {'latent passes s/n':>18}"
    )
    print(header)
    print("-" * len(header))
    for name in args.configs:
        base = load_vlm_config(name)
        for num_latents in args.latents:
            config = base.replace_staircase(num_latents=num_latents)
            torch.manual_seed(0)
            lm = CountingLM(TinyCausalLM(config.lm, config.vision))
            vlm = WallVLM(lm, config).to(args.device).eval()
            images = None
            if config.vision is not None:
                size = config.vision.image_size
                images = torch.rand(1, 2, 3, size, size, device=args.device)
            prompt = vlm.encode_prompts([TASK], [DONE], images)
            context = prompt.ids.shape[1] + (
                2 * config.vision.patches_per_view if config.vision else 0
            )
            params = sum(p.numel() for p in vlm.parameters()) / 1e6
            layers = config.lm.num_layers

            def staircase(vlm=vlm, prompt=prompt):
                with torch.inference_mode():
                    vlm.staircase_latents(prompt)

            def naive(vlm=vlm, prompt=prompt):
                with torch.inference_mode():
                    vlm.naive_latents(prompt)

            lm.reset()
            staircase()
            stair_calls = lm.layer_calls
            lm.reset()
            naive()
            naive_calls = lm.layer_calls
            (t_stair, c_stair), (t_naive, c_naive) = alternate_medians_ms(
                [staircase, naive], args.repeats
            )
            stair_latent = latent_layer_passes(layers, config.staircase.relay_layer, num_latents)
            print(
                f"{name:<10} {params:>6.1f}M {context:>4} {num_latents:>2} {t_stair:>9.2f} "
                f"{t_naive:>9.2f} {t_naive / t_stair:>6.2f} "
                f"{c_stair:>9.2f} {c_naive:>9.2f} {c_naive / c_stair:>6.2f} "
                f"{f'{stair_calls}/{naive_calls}':>10} "
                f"{f'{stair_latent}/{num_latents * layers}':>18}"
            )
    print(
        "ms: median wall time per call; cpu: median CPU time of the calling thread (meaningful "
        "with --threads 1). ratio = naive / staircase. calls: sequential decoder-layer calls (staircase L, "
        "naive K*L). latent passes: (latent token, layer) pairs, staircase L + (K-1)(L-r), "
        "naive K*L (as with a KV cache; this naive loop has none and also recomputes the prompt)."
    )


if __name__ == "__main__":
    main()
