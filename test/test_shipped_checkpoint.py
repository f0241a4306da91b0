"""Regression guard for the WALL-WM checkpoint wallwm_core ships (docs/results.md).

It runs the shipped checkpoint on two fixed training seeds of pick_place through the simulator
harness with the nodes' planner, event loop and controller core, and open loop on the first
observation of two other training seeds against the scripted expert. The bounds sit a safe margin from what was measured when the
checkpoint was shipped (docs/results.md, "Regression test"): a corrupt or retrained-worse
checkpoint, a broken normalisation, frame or sampler fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import yaml

from wallwm_sim.closed_loop_policy import (
    ClosedLoopPolicy,
    ClosedLoopSettings,
    SimulatedArm,
    wallwm_closed_loop,
)
from wallwm_sim.sim import TabletopSim
from wallwm_sim.untrained_checkpoint import shipped_checkpoint

TASK = "pick_place"
# Training seeds: what the model was fitted on must stay reproduced. The closed-loop seeds are
# two on which the shipped model grasps (of training seeds 1000-1013 it grasps on 1002, 1004,
# 1006 and 1013 and scores 0 on the others): a guard needs episodes that earn points.
OPEN_LOOP_SEEDS = (1000, 1001)
CLOSED_LOOP_SEEDS = (1002, 1004)
MAX_SIZE_MB = 25.0
# Measured at shipping (2026-12-01, docs/results.md "Regression test"), and the bounds:
MEASURED_TASK_PROGRESS = 20.0  # seeds 1002 and 1004: 20 each (grasp)
MIN_TASK_PROGRESS = 10.0  # one of the two episodes must still grasp
MEASURED_FIRST_CHUNK_ERROR_MM = 51.1  # seeds 1000, 1001: 54.3, 47.8; holding still: 171.9 mm
MAX_FIRST_CHUNK_ERROR_MM = 70.0


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path = shipped_checkpoint()
    assert path is not None, "wallwm_core ships no checkpoint (wallwm_core/checkpoints/)"
    return path


@pytest.fixture(scope="module")
def closed_loop(checkpoint: Path) -> ClosedLoopPolicy:
    """The shipped checkpoint as the harness runs it (loaded once for the tests below)."""
    return wallwm_closed_loop(checkpoint, ClosedLoopSettings(image_size=64))


@pytest.fixture(scope="module")
def expert_episodes(tmp_path_factory) -> dict[int, dict[str, np.ndarray]]:
    """The scripted expert's recorded actions on OPEN_LOOP_SEEDS (low-dimensional data only)."""
    from wallwm_core.episode_format import list_episodes
    from wallwm_sim.generate_demos import generate

    out = tmp_path_factory.mktemp("expert")
    generate(out, [TASK], list(OPEN_LOOP_SEEDS), ["train"], cameras=(), show_progress=False)
    episodes = {}
    for entry in list_episodes(out):
        lowdim = out / entry["directory"] / "lowdim.safetensors"
        episodes[entry["seed"]] = safetensors.numpy.load_file(str(lowdim))
        events = json.loads((out / entry["directory"] / "events.json").read_text())
        episodes[entry["seed"]]["first_event"] = events["subtask"][0]["caption"]
    return episodes


def test_the_shipped_checkpoint_is_trained_small_and_documented(checkpoint):
    size_mb = sum(p.stat().st_size for p in checkpoint.rglob("*") if p.is_file()) / 1e6
    assert size_mb <= MAX_SIZE_MB
    metadata = yaml.safe_load((checkpoint / "metadata.yaml").read_text())
    assert metadata["status"] == "trained"
    for name in ("config.yaml", "metrics.csv", "loss_curves.png", "shipped.yaml"):
        assert (checkpoint / "training" / name).stat().st_size > 0, name
    # Served as trained: future-video dropout, so the future video is read as noise.
    assert metadata["inference"]["sampler"]["future_video"] == "noise"


def test_first_chunk_follows_the_expert_open_loop(closed_loop, expert_episodes):
    """The first chunk of the first event, from the episode's first observation, against the
    expert's recorded targets at the same times; holding still is the baseline it must beat."""
    policy = closed_loop
    settings = policy.settings
    errors, holds = [], []
    with TabletopSim(policy.sim_config()) as sim:
        for seed in OPEN_LOOP_SEEDS:
            expert = expert_episodes[seed]
            sim.reset(TASK, seed, "train")
            arm = SimulatedArm(
                sim, settings.make_controller(), policy.cameras, settings.camera_period_ns
            )
            arm.begin()
            observation = arm.latest_observation
            chunk = policy.policy.predict_event(observation, str(expert["first_event"]))
            times_s = np.arange(chunk.num_steps) * chunk.step_period_ns / 1e9
            period_s = float(np.median(np.diff(expert["time_ns"]))) / 1e9
            last = len(expert["time_ns"]) - 1
            index = np.minimum(np.round(times_s / period_s).astype(int), last)
            reference = expert["action_tool_position"][index]
            errors.append(np.linalg.norm(chunk.positions[:, 0] - reference, axis=1).mean())
            holds.append(np.linalg.norm(expert["tool_position"][0] - reference, axis=1).mean())
    error_mm, hold_mm = 1000 * np.mean(errors), 1000 * np.mean(holds)
    assert error_mm < hold_mm, (error_mm, hold_mm)
    assert error_mm <= MAX_FIRST_CHUNK_ERROR_MM, (error_mm, MEASURED_FIRST_CHUNK_ERROR_MM)


def test_closed_loop_task_progress_on_two_training_seeds(closed_loop):
    policy = closed_loop
    results = []
    with TabletopSim(policy.sim_config()) as sim:
        for seed in CLOSED_LOOP_SEEDS:
            results.append(policy.run_episode(sim, TASK, seed).result)
    for result in results:
        assert result.rejected_chunks == 0 and result.rejected_commands == 0, result
        # the model ends its first event by itself (its event-length prediction), after it ran
        first = result.events[0]
        assert first.planner_outcome == "SUCCEEDED" and first.chunks >= 2, result.events
    progress = float(np.mean([r.score for r in results]))
    assert progress >= MIN_TASK_PROGRESS, (progress, MEASURED_TASK_PROGRESS)
