"""Training metrics: ``metrics.csv``, TensorBoard event files and a PNG of the curves.

``metrics.csv`` has one row per logged step; training rows fill the ``train/*`` columns and
validation rows the ``val/*`` columns (others empty). On resume, rows after the resumed step
are dropped (they came after the checkpoint and will be trained again), and TensorBoard purges
its events after that step the same way.
"""

from __future__ import annotations

import csv
import datetime
import logging
import math
from collections.abc import Mapping
from pathlib import Path

from wallwm_core.machine_info import machine_description

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
CURVES_FILE = "loss_curves.png"
TENSORBOARD_DIR = "tensorboard"
COLUMNS = (
    "step",
    "samples",
    "train/lr",
    "train/total",
    "train/video",
    "train/action",
    "train/dct",
    "train/event_length",
    "train/grad_norm",
    "train/samples_per_s",
    "val/total",
    "val/video",
    "val/action",
    "val/dct",
    "val/event_length",
    "val/action_mm",
    "val/action_deg",
    "val/gripper",
    "val/hold_mm",
    "val/hold_deg",
    "val/hold_gripper",
)


class MetricsLog:
    """Append-only metrics of one run (rank 0 only)."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run_dir / METRICS_FILE
        self.curves = run_dir / CURVES_FILE
        rows = self.read(self.path) if resume_step is not None and self.path.exists() else []
        rows = [row for row in rows if resume_step is None or int(row["step"]) <= resume_step]
        with self.path.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is pinned in requirements.lock; be clear if absent
                logger.warning("tensorboard is not installed: no TensorBoard event files")
            else:
                self.writer = SummaryWriter(
                    str(run_dir / TENSORBOARD_DIR), purge_step=(resume_step or 0) + 1
                )

    @staticmethod
    def read(path: Path) -> list[dict[str, str]]:
        with path.open(newline="") as stream:
            return list(csv.DictReader(stream))

    def log(self, step: int, samples: int, values: Mapping[str, float]) -> None:
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise KeyError(f"metrics without a column: {sorted(unknown)}")
        row = {"step": step, "samples": samples, **values}
        with self.path.open("a", newline="") as stream:
            csv.DictWriter(stream, fieldnames=COLUMNS).writerow(row)
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)
            self.writer.flush()

    def plot(self) -> None:
        """Write the PNG: training and validation losses, and the open-loop action error."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.read(self.path)

        def series(name: str) -> tuple[list[int], list[float]]:
            points = [(int(r["step"]), float(r[name])) for r in rows if r.get(name)]
            points = [(s, v) for s, v in points if math.isfinite(v)]
            return [s for s, _ in points], [v for _, v in points]

        figure, (losses, errors) = plt.subplots(1, 2, figsize=(11, 4))
        for name in ("train/total", "train/video", "train/action", "val/total", "val/action"):
            steps, values = series(name)
            if steps:
                style = "o-" if name.startswith("val") else "-"
                losses.plot(steps, values, style, label=name, markersize=3)
        losses.set(xlabel="step", ylabel="loss", yscale="log", title="losses")
        losses.legend(fontsize=8)
        for name in ("val/action_mm", "val/hold_mm"):
            steps, values = series(name)
            if steps:
                errors.plot(steps, values, "o-", label=name, markersize=3)
        errors.set(xlabel="step", ylabel="mm", title="open-loop position error (validation)")
        twin = errors.twinx()
        for name in ("val/action_deg", "val/hold_deg"):
            steps, values = series(name)
            if steps:
                twin.plot(steps, values, "s--", label=name, markersize=3, alpha=0.6)
        twin.set_ylabel("degrees")
        handles = errors.get_legend_handles_labels()
        twin_handles = twin.get_legend_handles_labels()
        if handles[0] or twin_handles[0]:
            errors.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize=8)
        created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        figure.text(
            0.01, 0.01, f"{self.path.parent} | {created} | {machine_description()}", fontsize=7
        )
        figure.tight_layout(rect=(0, 0.04, 1, 1))
        figure.savefig(self.curves, dpi=90)
        plt.close(figure)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
