"""prepare_data: episodes -> split -> windows -> codec -> latent cache -> stats -> weights."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from wallwm_core.config_loading import ConfigError
from wallwm_core.inference.deployment import DeploymentMetadata, step_period_ns
from wallwm_core.inference.observation import ObservationEncoder
from wallwm_core.model.codec import ConvAutoencoderCodec, build_codec
from wallwm_core.model.config import ModelConfig, config_to_dict
from wallwm_core.model.wallwm import WallWM
from wallwm_core.normalization import NormalizationStats, fit
from wallwm_core.tokenizer import ByteTokenizer
from wallwm_core.training.batch import cross_view_allowed_from_cameras
from wallwm_core.training.data import balance
from wallwm_core.training.data.codec_stage import (
    POOL_IMAGES,
    PSNR_IMAGES,
    reconstruction_psnr,
    sample_frames,
    train_codec,
    weights_digest,
)
from wallwm_core.training.data.config import DataConfig
from wallwm_core.training.data.dataset import WindowArrays, WindowDataset
from wallwm_core.training.data.episodes import (
    DatasetError,
    EpisodeData,
    Rig,
    dataset_fingerprint,
    load_dataset,
    split_by_seed,
)
from wallwm_core.training.data.latent_cache import cache_fingerprint, open_or_build
from wallwm_core.training.data.windows import (
    Timing,
    WindowCounts,
    WindowTable,
    command_tokens,
    concatenate,
    cut_episode,
)

ARM_NAME = "arm"


@dataclasses.dataclass
class PreparedData:
    """Everything the training loop needs from the data side.

    The first five fields are the data contract. The rest are what a checkpoint needs besides:
    ``state_stats`` (the state normalisation, ``stats`` being the action tokens'), the trained
    frozen ``codec`` (eval mode, CPU; the model's own class has no codec) and the
    ``deployment`` metadata of the recorded rig.
    """

    train: WindowDataset
    val: WindowDataset
    stats: NormalizationStats  # action tokens
    codec_psnr_db: float
    report: dict[str, Any]
    state_stats: NormalizationStats
    codec: ConvAutoencoderCodec
    deployment: DeploymentMetadata


def default_cache_dir(config: DataConfig) -> Path:
    """``cache_dir`` or ``<first dataset path>.wallwm_cache`` (beside it, shared by runs)."""
    if config.cache_dir:
        return Path(config.cache_dir)
    first = Path(config.paths[0]).resolve()
    return first.with_name(first.name + ".wallwm_cache")


def deployment_for(rig: Rig, model: ModelConfig) -> DeploymentMetadata:
    """The checkpoint's deployment metadata for the recorded rig; DatasetError on mismatch."""
    if model.action.num_arms != 1:
        raise DatasetError(
            f"the episode format records one arm; the model config has action.num_arms="
            f"{model.action.num_arms}"
        )
    if model.action.state_dim != len(rig.joint_names):
        raise DatasetError(
            f"the episodes record {len(rig.joint_names)} joints {list(rig.joint_names)}; the "
            f"model config has action.state_dim={model.action.state_dim}"
        )
    try:
        deployment = DeploymentMetadata(
            cameras=rig.cameras,
            image_size=rig.image_size,
            joint_names=rig.joint_names,
            arm_names=(ARM_NAME,),
            ee_frames=(rig.tool_frame,),
            base_frame=rig.base_frame,
            step_period_ns=step_period_ns(model.action.control_hz),
        )
        deployment.validate_for(model)
    except ConfigError as error:
        raise DatasetError(f"the recorded rig does not fit the model: {error}") from error
    return deployment


def _check_model(model: ModelConfig) -> None:
    if model.text_encoder.kind != "byte_transformer":
        raise DatasetError(
            f"text_encoder.kind={model.text_encoder.kind!r}: the data pipeline tokenises for the "
            "model's own byte encoder; external text encoders are not supported yet"
        )
    if model.codec.temporal_rule != "per_frame":
        raise DatasetError(
            f"codec.temporal_rule={model.codec.temporal_rule!r}: the latent cache encodes one "
            "latent frame per video frame (per_frame) only"
        )


def _check_rates(episodes: list[EpisodeData], timing: Timing) -> None:
    for episode in episodes:
        if episode.frame_period_ns > timing.latent_period_ns:
            raise DatasetError(
                f"{episode.name}: camera frames every {episode.frame_period_ns / 1e6:g} ms, "
                f"slower than the model's latent frames (every {timing.latent_period_ns / 1e6:g}"
                " ms); record with a higher --camera-rate"
            )


def _windows(
    episodes: list[EpisodeData], members: list[int], config: DataConfig, timing: Timing, dim: int
) -> tuple[WindowTable, WindowCounts]:
    tables, counts = [], WindowCounts()
    for index in members:
        table, episode_counts = cut_episode(episodes[index], index, config, timing)
        tables.append(table)
        counts.add(episode_counts)
    return concatenate(tables, timing, dim), counts


def _real_tokens(table: WindowTable) -> np.ndarray:
    mask = np.arange(table.tokens.shape[1])[None, :] < table.num_steps[:, None]
    return table.tokens[mask]


def _codec(
    config: DataConfig,
    model: ModelConfig,
    cache_dir: Path,
    fingerprint: str,
    encoder: ObservationEncoder,
    train: list[EpisodeData],
    val: list[EpisodeData],
    device: torch.device,
    log: Callable[[str], None],
) -> tuple[ConvAutoencoderCodec, float, bool]:
    """(codec, validation PSNR, trained now?): reused from the cache when the dataset, split
    and codec settings are unchanged."""
    weights_path, info_path = cache_dir / "codec.safetensors", cache_dir / "codec.json"
    if weights_path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("fingerprint") == fingerprint:
            codec = build_codec(model.codec)
            codec.load_state_dict(safetensors.torch.load_file(str(weights_path)))
            log(f"codec: reusing {weights_path} (validation PSNR {info['psnr_db']:.2f} dB)")
            return codec.eval(), float(info["psnr_db"]), False
    pool = sample_frames(train, encoder, POOL_IMAGES)
    log(
        f"codec: training {config.codec_steps} steps on {len(pool)} train images "
        f"({tuple(pool.shape[-2:])} px)"
    )
    codec = train_codec(
        model.codec, pool, config.codec_steps, config.codec_batch_size, config.codec_lr, device, log
    )
    held = val if val else train
    psnr = reconstruction_psnr(codec, sample_frames(held, encoder, PSNR_IMAGES), device)
    log(f"codec: {'validation' if val else 'train (no validation split)'} PSNR {psnr:.2f} dB")
    cache_dir.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in codec.state_dict().items()}, str(weights_path)
    )
    info_path.write_text(json.dumps({"fingerprint": fingerprint, "psnr_db": psnr}))
    return codec, psnr, True


def _sight_cone_masks(
    episodes: list[EpisodeData],
    table: WindowTable,
    deployment: DeploymentMetadata,
    model: ModelConfig,
) -> tuple[np.ndarray | None, np.ndarray, int]:
    """Packed masks of the distinct start frames, index per window, tokens per frame."""
    sight_cone = model.video_tower.sight_cone
    if not sight_cone.enabled or len(deployment.cameras) < 2:
        return None, np.zeros(len(table), np.int64), 0
    grid = model.patch_grid(deployment.latent_hw)
    tokens = len(deployment.cameras) * grid[0] * grid[1]
    keys = np.stack([table.episode, table.start_frame], axis=1)
    distinct, index = np.unique(keys, axis=0, return_inverse=True)
    packed = np.zeros((len(distinct), math.ceil(tokens * tokens / 8)), np.uint8)
    for row, (episode, frame) in enumerate(distinct):
        rig = [episodes[episode].camera_geometry(c, int(frame)) for c in deployment.cameras]
        mask = cross_view_allowed_from_cameras([rig], grid, sight_cone)[0]
        packed[row] = np.packbits(mask.numpy().reshape(-1))
    return packed, index.reshape(-1).astype(np.int64), tokens


def _arrays(
    episodes: list[EpisodeData],
    table: WindowTable,
    offsets: tuple[int, ...],
    action_stats: NormalizationStats,
    state_stats: NormalizationStats,
    deployment: DeploymentMetadata,
    model: ModelConfig,
    labels: np.ndarray | None,
) -> WindowArrays:
    starts = np.asarray(offsets)[table.episode][:, None]
    frames = np.where(table.frames >= 0, table.frames + starts, -1)
    real = np.arange(table.tokens.shape[1])[None, :] < table.num_steps[:, None]
    tokens = np.where(real[..., None], action_stats.normalize(table.tokens), 0.0)
    texts = sorted(set(table.texts))
    text_ids, text_mask = ByteTokenizer().encode(texts, model.text_encoder.max_length)
    lookup = {t: i for i, t in enumerate(texts)}
    masks, mask_index, mask_tokens = _sight_cone_masks(episodes, table, deployment, model)
    info = []
    for row in range(len(table)):
        episode = episodes[int(table.episode[row])]
        start_frame = int(table.start_frame[row])
        bounds = table.event_bounds_ns[row]
        period = episode.control_period_ns
        info.append(
            {
                "episode": episode.name,
                "task": episode.task,
                "seed": episode.seed,
                "variant": str(episode.meta.get("variant", "")),
                "text": table.texts[row],
                "start_step": int(episode.frame_steps[start_frame]),
                "start_frame": start_frame,
                "length": int(table.num_steps[row]),
                "event_length_s": float(table.event_length_s[row]),
                "event_start_step": round(bounds[0] / period),
                "event_end_step": round(bounds[1] / period),
                "cluster": int(labels[row]) if labels is not None else -1,
            }
        )
    return WindowArrays(
        frames=frames.astype(np.int64),
        tokens=tokens.astype(np.float32),
        num_steps=table.num_steps.astype(np.int64),
        state=state_stats.normalize(table.state).astype(np.float32),
        event_length_s=table.event_length_s.astype(np.float32),
        text_index=np.array([lookup[t] for t in table.texts], dtype=np.int64),
        text_ids=text_ids.numpy(),
        text_mask=text_mask.numpy(),
        mask_index=mask_index,
        masks=masks,
        mask_tokens=mask_tokens,
        info=info,
    )


def _event_labels(
    episodes: list[EpisodeData], table: WindowTable, timing: Timing, num_clusters: int
) -> np.ndarray:
    """Cluster label per window: its event's cluster (events = distinct (episode, span))."""
    if len(table) == 0:
        return np.zeros(0, np.int64)
    keys = np.concatenate([table.episode[:, None], table.event_bounds_ns], axis=1)
    distinct, index = np.unique(keys, axis=0, return_inverse=True)
    texts, stats = [], []
    first = {}
    for row in range(len(table)):
        first.setdefault(int(index.reshape(-1)[row]), row)
    for event, (episode, start, end) in enumerate(distinct):
        last = max(start, end - round(timing.step_ns))
        tokens = command_tokens(episodes[int(episode)], np.array([start, last]))
        stats.append(
            [*(tokens[1, :3] - tokens[0, :3]), tokens[0, 9], tokens[1, 9], (end - start) / 1e9]
        )
        texts.append(table.texts[first[event]])
    labels = balance.cluster(balance.event_features(texts, np.array(stats)), num_clusters)
    return labels[index.reshape(-1)]


@contextlib.contextmanager
def _cache_lock(cache_dir: Path):
    """An exclusive lock on the cache folder: concurrent preparations (torchrun ranks, two
    runs on one dataset) take turns, and the later ones reuse what the first one built."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _seed_digest(seeds: list[int]) -> str:
    return hashlib.sha256(json.dumps(seeds).encode()).hexdigest()


def prepare_data(
    config: DataConfig,
    model: WallWM,
    *,
    log: Callable[[str], None] = print,
    device: str | torch.device = "cpu",
) -> PreparedData:
    """Read episodes, split by seed, cut windows, train (or reuse from the cache) the codec on
    train frames and report its validation PSNR, encode every frame once into the memory-mapped
    latent cache, fit normalisation on train windows, cluster events into sampling weights.

    Raises DatasetError (a ValueError) naming the problem for a dataset it cannot use.
    """
    device = torch.device(device)
    model_config = model.config
    _check_model(model_config)
    episodes, rig = load_dataset(config.paths)
    deployment = deployment_for(rig, model_config)
    timing = Timing.of(model_config, config)
    _check_rates(episodes, timing)
    train_ids, val_ids, train_seeds, val_seeds = split_by_seed(episodes, config.val_fraction)
    state_dim = model_config.action.state_dim
    train_table, train_counts = _windows(episodes, train_ids, config, timing, state_dim)
    val_table, val_counts = _windows(episodes, val_ids, config, timing, state_dim)
    if len(train_table) == 0:
        raise DatasetError(
            f"no training windows: {train_counts.events} events on track "
            f"{config.instruction_track!r} in {len(train_ids)} train episodes "
            f"({train_counts.oversize_skipped} skipped as longer than limits.max_event_s)"
        )
    action_stats = fit(_real_tokens(train_table))
    state_stats = fit(train_table.state)

    cache_dir = default_cache_dir(config)
    dataset_fp = dataset_fingerprint(episodes)
    encoder = ObservationEncoder(
        deployment, model_config, build_codec(model_config.codec), state_stats, device
    )
    codec_fp = hashlib.sha256(
        json.dumps(
            [
                dataset_fp,
                _seed_digest(train_seeds),
                _seed_digest(val_seeds),
                config_to_dict(model_config.codec),
                config.codec_steps,
                config.codec_batch_size,
                config.codec_lr,
            ]
        ).encode()
    ).hexdigest()
    with _cache_lock(cache_dir):
        codec, psnr, trained = _codec(
            config,
            model_config,
            cache_dir,
            codec_fp,
            encoder,
            [episodes[i] for i in train_ids],
            [episodes[i] for i in val_ids],
            device,
            log,
        )
        encoder.codec = codec.to(device)
        latent_fp = cache_fingerprint(dataset_fp, weights_digest(codec), deployment.cameras)
        cache = open_or_build(cache_dir / "latents", latent_fp, episodes, encoder, log)
    codec = codec.cpu().eval()
    for parameter in codec.parameters():
        parameter.requires_grad_(False)

    labels = _event_labels(episodes, train_table, timing, config.num_clusters)
    weights = balance.balance_weights(labels, config.balance_alpha)
    val_weights = np.full(len(val_table), 1.0 / max(1, len(val_table)))
    common = (cache.offsets, action_stats, state_stats, deployment, model_config)
    train = WindowDataset(cache.latents, _arrays(episodes, train_table, *common, labels), weights)
    val = WindowDataset(cache.latents, _arrays(episodes, val_table, *common, None), val_weights)

    distribution = balance.distribution(labels, weights, train_table.texts)
    report = {
        "window_mode": config.window_mode,
        "instruction_track": config.instruction_track,
        "episodes": {"train": len(train_ids), "val": len(val_ids)},
        "seeds": {"train": train_seeds, "val": val_seeds},
        "windows": {"train": len(train), "val": len(val)},
        "counts": {
            "train": dataclasses.asdict(train_counts),
            "val": dataclasses.asdict(val_counts),
        },
        "oversize_events": {
            "policy": config.oversize_events,
            "limit_s": timing.max_event_s,
            "split": train_counts.oversize_split + val_counts.oversize_split,
            "pieces": train_counts.oversize_pieces + val_counts.oversize_pieces,
            "skipped": train_counts.oversize_skipped + val_counts.oversize_skipped,
        },
        "rates": {
            "recording_control_hz": 1e9 / episodes[0].control_period_ns,
            "recording_camera_hz": 1e9 / episodes[0].frame_period_ns,
            "model_control_hz": timing.control_hz,
            "model_latent_hz": 1e9 / timing.latent_period_ns,
        },
        "shapes": {"latent_frames": timing.num_frames, "action_steps": timing.window_steps},
        "codec": {"psnr_db": psnr, "trained": trained, "steps": config.codec_steps},
        "latent_cache": {
            "path": str(cache.path),
            "fingerprint": cache.fingerprint,
            "rebuilt": cache.rebuilt,
            "frames": int(cache.latents.shape[0]),
        },
        "balance": {"alpha": config.balance_alpha, "clusters": distribution},
    }
    log(
        f"data: {len(train)} train / {len(val)} val windows from {len(train_ids)} / "
        f"{len(val_ids)} episodes (seeds {train_seeds} / {val_seeds}); oversize events "
        f"split {report['oversize_events']['split']}, skipped "
        f"{report['oversize_events']['skipped']}"
    )
    log(f"sampling (alpha={config.balance_alpha}): effective distribution per cluster")
    for row in distribution:
        log(
            f"  cluster {row['cluster']}: {row['windows']} windows, "
            f"{100 * row['share_uniform']:.1f}% uniform -> {100 * row['share_weighted']:.1f}% "
            f"weighted, e.g. {row['examples']}"
        )
    return PreparedData(
        train=train,
        val=val,
        stats=action_stats,
        codec_psnr_db=psnr,
        report=report,
        state_stats=state_stats,
        codec=codec,
        deployment=deployment,
    )
