"""Print the parameter counts of every shipped model config (built on the meta device).

python -m wallwm_core.model.summary
"""

from __future__ import annotations

from wallwm_core.model.config import load_model_config, shipped_config_names
from wallwm_core.model.wallwm import build_model, parameter_counts

COLUMNS = (
    "text_encoder",
    "video_backbone",
    "video_cross_view",
    "action_tower",
    "event_length_head",
    "total",
)


def format_count(count: int) -> str:
    """``1418996800`` -> ``"1419.00M"``; small counts in thousands."""
    if count == 0:
        return "0"
    return f"{count / 1e6:.2f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"


def summary_table() -> str:
    """A markdown table: one row per shipped config, one column per model part."""
    lines = [
        "| config | " + " | ".join(COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    for name in shipped_config_names():
        counts = parameter_counts(build_model(load_model_config(name), device="meta"))
        lines.append(f"| {name} | " + " | ".join(format_count(counts[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    print(summary_table())


if __name__ == "__main__":
    main()
