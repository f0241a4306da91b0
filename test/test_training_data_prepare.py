"""prepare_data end to end: the latent cache's reuse and invalidation on hand-made episodes, and
windows of generated demos that give the model exactly the inputs deployment gives it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import safetensors.torch
import torch
from training_data_helpers import write_handmade_episode

from wallwm_core.inference.chunks import tokens_to_chunk
from wallwm_core.inference.observation import ObservationEncoder
from wallwm_core.model.config import load_model_config
from wallwm_core.model.wallwm import build_model
from wallwm_core.policy import Observation
from wallwm_core.tokenizer import ByteTokenizer
from wallwm_core.training.data import DataConfig, DatasetError, prepare_data
from wallwm_core.training.data.episodes import load_dataset
from wallwm_core.training.objective import compute_loss

DEMO_CAMERAS = ("front", "wrist")  # a fixed and a moving camera


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model(load_model_config("tiny"))


@pytest.fixture(scope="session")
def generated_demos(tmp_path_factory):
    """Four scripted-expert demos (2 tasks x seeds 0, 1), 64 px, two cameras: recorded once."""
    from wallwm_sim.generate_demos import generate

    root = tmp_path_factory.mktemp("demos") / "data"
    written, dropped = generate(
        root,
        ["pick_place", "push_to_target"],
        [0, 1],
        cameras=DEMO_CAMERAS,
        image_size=(64, 64),
        image_format="raw",
        show_progress=False,
    )
    assert written == 4 and dropped == 0
    return root


def test_cache_reuse_and_invalidation(tmp_path, tiny) -> None:
    root = tmp_path / "data"
    for seed in (0, 1, 2):
        write_handmade_episode(root, seed=seed)
    config = DataConfig(
        paths=(str(root),),
        codec_steps=3,
        codec_batch_size=4,
        val_fraction=0.34,
        cache_dir=str(tmp_path / "cache"),
    )
    logs: list[str] = []
    first = prepare_data(config, tiny, log=logs.append)
    assert first.report["codec"]["trained"] and first.report["latent_cache"]["rebuilt"]
    assert any("effective distribution" in line for line in logs)

    # Unchanged: the codec and the latents are reused, the batches are identical.
    again = prepare_data(config, tiny, log=lambda _: None)
    assert not again.report["codec"]["trained"] and not again.report["latent_cache"]["rebuilt"]
    assert again.codec_psnr_db == first.codec_psnr_db
    a, b = first.train.batch([0, 3]), again.train.batch([0, 3])
    assert torch.equal(a.video_latents, b.video_latents) and torch.equal(a.actions, b.actions)

    # Other codec weights: the latents are rebuilt and differ.
    weights_file = tmp_path / "cache" / "codec.safetensors"
    weights = safetensors.torch.load_file(str(weights_file))
    weights = {k: v * 1.5 if k.startswith("encoder") else v for k, v in weights.items()}
    safetensors.torch.save_file(weights, str(weights_file))
    changed = prepare_data(config, tiny, log=lambda _: None)
    assert changed.report["latent_cache"]["rebuilt"]
    assert (
        changed.report["latent_cache"]["fingerprint"] != first.report["latent_cache"]["fingerprint"]
    )
    assert not torch.equal(changed.train.batch([0]).video_latents, a.video_latents[:1])

    # A changed dataset (one more episode): the codec is retrained, the latents rebuilt.
    write_handmade_episode(root, seed=3)
    grown = prepare_data(config, tiny, log=lambda _: None)
    assert grown.report["codec"]["trained"] and grown.report["latent_cache"]["rebuilt"]
    assert grown.report["latent_cache"]["frames"] == 4 * 60


def test_prepare_reports_dataset_errors(tmp_path, tiny) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no episodes"):
        prepare_data(DataConfig(paths=(str(tmp_path / "empty"),)), tiny, log=lambda _: None)
    write_handmade_episode(tmp_path / "one", seed=0)
    # Every event is longer than 1 s: skipped, so nothing is left to train on, and it says so.
    short = build_model(
        dataclasses.replace(
            load_model_config("tiny"),
            limits=dataclasses.replace(load_model_config("tiny").limits, max_event_s=1.0),
        )
    )
    config = DataConfig(paths=(str(tmp_path / "one"),), val_fraction=0.0, oversize_events="skip")
    with pytest.raises(DatasetError, match=r"2 skipped as longer than limits\.max_event_s"):
        prepare_data(config, short, log=lambda _: None)
    # Split instead: 2.0 s -> 2 pieces, 3.94 s -> 4 pieces, counted in the report.
    config = dataclasses.replace(
        config, oversize_events="split", codec_steps=1, cache_dir=str(tmp_path / "cache")
    )
    data = prepare_data(config, short, log=lambda _: None)
    assert data.report["oversize_events"] == {
        "policy": "split",
        "limit_s": 1.0,
        "split": 2,
        "pieces": 6,
        "skipped": 0,
    }
    lengths = [data.train.window_info(i)["event_length_s"] for i in range(len(data.train))]
    assert max(lengths) <= 1.0


def test_generated_demos_give_deployment_inputs(generated_demos, tmp_path, tiny) -> None:
    config = DataConfig(
        paths=(str(generated_demos),),
        codec_steps=5,
        codec_batch_size=4,
        val_fraction=0.5,
        num_clusters=2,
        cache_dir=str(tmp_path / "cache"),
    )
    data = prepare_data(config, tiny, log=lambda _: None)
    report = json.loads(json.dumps(data.report))  # JSON-able
    assert report["episodes"] == {"train": 2, "val": 2}
    assert not set(report["seeds"]["train"]) & set(report["seeds"]["val"])
    train_seeds = {data.train.window_info(i)["seed"] for i in range(len(data.train))}
    val_seeds = {data.val.window_info(i)["seed"] for i in range(len(data.val))}
    assert train_seeds.isdisjoint(val_seeds)
    assert np.isfinite(data.codec_psnr_db) and data.codec_psnr_db > 5.0
    assert data.train.weights.sum() == pytest.approx(1.0)
    shares = [c["share_weighted"] for c in report["balance"]["clusters"]]
    assert shares == pytest.approx([1.0 / len(shares)] * len(shares))

    indices = [0, len(data.train) // 2, len(data.train) - 1]
    batch = data.train.batch(indices)
    batch.validate(tiny.config)
    assert torch.isfinite(compute_loss(tiny, batch, torch.Generator().manual_seed(0)).total)
    assert torch.equal(batch.video_latents, data.train.batch(indices).video_latents)

    # The observation at a window's start, as deployment would hand it to the policy.
    episodes, _ = load_dataset(config.paths)
    info = data.train.window_info(indices[1])
    episode = next(e for e in episodes if e.name == info["episode"])
    frame, step = info["start_frame"], info["start_step"]
    observation = Observation(
        stamp_ns=int(episode.lowdim["time_ns"][step]),
        images={c: v[0] for c, v in episode.images(np.array([frame]), DEMO_CAMERAS).items()},
        joint_positions=episode.lowdim["joint_positions"][step][::-1].copy(),
        joint_names=tuple(episode.meta["joint_names"])[::-1],  # any order: matched by name
        cameras={c: episode.camera_geometry(c, frame) for c in DEMO_CAMERAS},
    )
    encoder = ObservationEncoder(
        data.deployment, tiny.config, data.codec, data.state_stats, torch.device("cpu")
    )
    with torch.no_grad():
        encoded = encoder.encode(observation)
    assert data.deployment.cameras == DEMO_CAMERAS
    context = tiny.config.objective.context_latent_frames
    np.testing.assert_allclose(
        batch.video_latents[1, :, context - 1], encoded.latents[0, :, 0], rtol=2e-3, atol=2e-3
    )
    torch.testing.assert_close(batch.state[1], encoded.state[0])
    assert torch.equal(batch.cross_view_allowed[1], encoded.cross_view_allowed[0])
    ids, mask = ByteTokenizer().encode([info["text"]], tiny.config.text_encoder.max_length)
    assert torch.equal(batch.text_ids[1], ids[0]) and torch.equal(batch.text_mask[1], mask[0])

    # The window's first action decodes (as inference decodes a chunk) to the recorded command.
    steps = info["length"]
    chunk = tokens_to_chunk(batch.actions[1, :steps], data.stats, data.deployment, 0)
    np.testing.assert_allclose(
        chunk.positions[0, 0], episode.lowdim["action_tool_position"][step], atol=1e-5
    )
    recorded = episode.lowdim["action_tool_quaternion"][step]
    assert abs(float(np.dot(chunk.quaternions[0, 0], recorded))) == pytest.approx(1.0, abs=1e-6)
    assert chunk.gripper[0, 0] == pytest.approx(episode.lowdim["action_gripper"][step], abs=1e-5)
    assert batch.event_length_s[1] == pytest.approx(info["event_length_s"])
