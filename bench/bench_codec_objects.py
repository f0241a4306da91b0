"""Does a checkpoint's video codec keep the small objects? Reconstruction error on object pixels
against the whole frame, over the first frame of recorded episodes.

    python bench/bench_codec_objects.py --checkpoint wallwm_core/checkpoints/wallwm-sim-cpu \\
        --dataset data/demos64 [--episodes 20] [--plot build/codec_objects.png]

Object pixels are the saturated ones (the coloured cubes, zones and buttons; the table, the arm
and the walls are grey or brown): ``max(rgb) - min(rgb) > 0.45``. A codec that blurs a 3-pixel
cube into the table shows a much larger error there than on the frame as a whole; the policy
reads the scene only through these latents. The figure that matters is the ratio.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from wallwm_core.checkpoint import build_modules, load_checkpoint
from wallwm_core.episode_format import list_episodes, read_episode

SATURATION = 0.45


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--plot", type=Path, help="originals over reconstructions, one episode")
    args = parser.parse_args()

    checkpoint = load_checkpoint(args.checkpoint)
    _, codec, _, _ = build_modules(checkpoint)
    cameras = list(checkpoint.metadata.deployment.cameras)
    entries = list_episodes(args.dataset)[: args.episodes]
    whole, objects, pixels = {c: [] for c in cameras}, {c: [] for c in cameras}, []
    first_pair = None
    for entry in entries:
        frames = read_episode(args.dataset / entry["directory"]).frames
        images = np.stack([frames[c][:1] for c in cameras])  # [V, 1, H, W, 3] uint8
        batch = torch.from_numpy(images).permute(0, 1, 4, 2, 3)[None]
        with torch.no_grad():
            rebuilt = codec.decode(codec.encode(batch))[0, :, 0].permute(0, 2, 3, 1).numpy()
        original = images[:, 0].astype(np.float32) / 255.0
        error = np.abs(rebuilt - original).mean(-1)
        mask = original.max(-1) - original.min(-1) > SATURATION
        pixels.append(mask.sum(axis=(1, 2)))
        for index, camera in enumerate(cameras):
            whole[camera].append(error[index].mean())
            if mask[index].any():
                objects[camera].append(error[index][mask[index]].mean())
        first_pair = first_pair or (original, rebuilt)

    print(f"{len(entries)} episodes, first frame; mean absolute error in [0, 1]")
    print(f"{'camera':<10} {'frame':>7} {'objects':>8} {'ratio':>6} {'object px':>10}")
    for index, camera in enumerate(cameras):
        frame, obj = float(np.mean(whole[camera])), float(np.mean(objects[camera]))
        count = float(np.mean([p[index] for p in pixels]))
        print(f"{camera:<10} {frame:7.3f} {obj:8.3f} {obj / frame:6.1f} {count:10.0f}")
    if args.plot is not None and first_pair is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        original, rebuilt = first_pair
        figure, axes = plt.subplots(2, len(cameras), figsize=(3 * len(cameras), 6))
        for index in range(len(cameras)):
            for row, image in enumerate((original, rebuilt)):
                axes[row, index].imshow(image[index])
                axes[row, index].axis("off")
            axes[0, index].set_title(cameras[index])
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.plot, dpi=80)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
