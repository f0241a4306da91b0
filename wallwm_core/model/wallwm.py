"""WALL-WM: the layer-coupled video-action denoiser (dual tower) and its public API.

:class:`WallWM` holds the text encoder (when it is the trainable byte encoder), the video tower,
the action tower and the event-length head. Information flows one way: the action tower reads
the video tower's per-block hidden states; nothing in the video path reads actions.

Inference building blocks (samplers are built on these; time convention of
:mod:`wallwm_core.flow_matching`: t = 0 data, t = 1 noise):

- :meth:`WallWM.encode_text` / :meth:`WallWM.encode_texts` -> :class:`TextEmbedding`;
- :meth:`WallWM.video_forward` -> video velocity + per-block :class:`VideoFeatures`;
- :meth:`WallWM.video_memory` -> :class:`VideoMemory` (action-tower keys/values of those
  features: compute once per chunk at the anchor noise level, reuse for every action step);
- :meth:`WallWM.action_forward` -> action velocity;
- :meth:`WallWM.event_length` -> predicted remaining event time Δt in seconds.

Weights: ``state_dict()`` keys are stable (``text_encoder.*``, ``video_tower.*``,
``action_tower.*``, ``event_length_head.*``); the config round-trips through
:func:`~wallwm_core.model.config.config_to_dict`. The codec is built separately
(:func:`~wallwm_core.model.codec.build_codec`) and has weights of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from wallwm_core.model.action_tower import ActionTower, VideoMemory
from wallwm_core.model.config import ModelConfig
from wallwm_core.model.heads import EventLengthHead, masked_mean
from wallwm_core.model.text_encoder import ByteTextEncoder, TextEmbedding
from wallwm_core.model.video_tower import VideoFeatures, VideoOutput, VideoTower


class WallWM(nn.Module):
    """The dual-tower denoiser built from a :class:`ModelConfig` (no side effects)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.text_encoder = (
            ByteTextEncoder(config.text_encoder)
            if config.text_encoder.kind == "byte_transformer"
            else None
        )
        self.video_tower = VideoTower(config.video_tower)
        self.action_tower = ActionTower(
            config.action_tower, config.action, config.limits, config.video_tower.dim
        )
        self.event_length_head = EventLengthHead(
            config.heads.event_length, config.video_tower.dim, config.action.state_dim
        )

    # -- text ----------------------------------------------------------------------------------
    def _byte_encoder(self) -> ByteTextEncoder:
        if self.text_encoder is None:
            raise RuntimeError(
                f"config {self.config.name!r} uses an external text encoder "
                f"({self.config.text_encoder.kind!r}); encode text with it "
                "(wallwm_core.model.text_encoder.load_hf_text_encoder) and pass the TextEmbedding"
            )
        return self.text_encoder

    def encode_text(self, ids: torch.Tensor, mask: torch.Tensor) -> TextEmbedding:
        """Byte-token ids ``[B, L]`` + bool mask -> :class:`TextEmbedding` ``[B, L, text_dim]``."""
        return self._byte_encoder()(ids, mask)

    def encode_texts(self, texts: Sequence[str]) -> TextEmbedding:
        """Strings -> :class:`TextEmbedding` (tokenised with the ByteTokenizer)."""
        return self._byte_encoder().encode_texts(texts)

    # -- video ---------------------------------------------------------------------------------
    def video_forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        text: TextEmbedding,
        video_mask: torch.Tensor | None = None,
        cross_view_allowed: torch.Tensor | None = None,
        use_sight_cone: bool | None = None,
        return_features: bool = True,
    ) -> VideoOutput:
        """Video velocity ``[B, V, F, C, h, w]`` and per-block features.

        ``timesteps`` ``[B]`` or ``[B, F]`` (clean context frames at 0); see
        :meth:`VideoTower.forward` for every argument.
        """
        return self.video_tower(
            latents,
            timesteps,
            text,
            video_mask=video_mask,
            cross_view_allowed=cross_view_allowed,
            use_sight_cone=use_sight_cone,
            return_features=return_features,
        )

    # -- actions -------------------------------------------------------------------------------
    def video_memory(self, features: VideoFeatures) -> VideoMemory:
        """The action tower's keys/values of ``features`` (reuse across action steps)."""
        return self.action_tower.build_video_memory(features)

    def action_forward(
        self,
        noisy_actions: torch.Tensor,
        timesteps: torch.Tensor,
        state: torch.Tensor,
        video: VideoMemory | VideoFeatures,
        action_mask: torch.Tensor | None = None,
        anchor_frame: int = 0,
    ) -> torch.Tensor:
        """Action velocity ``[B', T, token_dim]``; see :meth:`ActionTower.forward`.

        ``noisy_actions`` ``[B', T, D]``, ``timesteps`` ``[B']``, ``state`` ``[B, state_dim]``,
        ``video`` of batch ``B`` with ``B' = r * B`` (sample-major), ``action_mask`` ``[B', T]``.
        """
        return self.action_tower(noisy_actions, timesteps, state, video, action_mask, anchor_frame)

    # -- event length --------------------------------------------------------------------------
    def event_length_normalized(
        self,
        context_latents: torch.Tensor,
        text: TextEmbedding,
        state: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        cross_view_allowed: torch.Tensor | None = None,
        use_sight_cone: bool | None = None,
    ) -> torch.Tensor:
        """Δt ``[B]`` in units of ``objective.event_length_scale_s`` (what the loss sees).

        ``context_latents`` ``[B, V, Fc, C, h, w]``: the clean observation frames only (run at
        t = 0, so the estimate never depends on predicted frames); ``video_mask`` its
        ``[B, V, Fc, h, w]`` mask.
        """
        batch, _, frames = context_latents.shape[:3]
        timesteps = torch.zeros(batch, frames, device=context_latents.device)
        output = self.video_forward(
            context_latents,
            timesteps,
            text,
            video_mask=video_mask,
            cross_view_allowed=cross_view_allowed,
            use_sight_cone=use_sight_cone,
        )
        assert output.features is not None
        last = output.features.hidden_states[-1].flatten(1, 3)
        video_pooled = masked_mean(last, output.features.token_mask.flatten(1))
        text_pooled = masked_mean(self.video_tower.embed_text(text), text.mask)
        return self.event_length_head(video_pooled, text_pooled, state)

    def event_length(
        self,
        context_latents: torch.Tensor,
        text: TextEmbedding,
        state: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        cross_view_allowed: torch.Tensor | None = None,
        use_sight_cone: bool | None = None,
    ) -> torch.Tensor:
        """Predicted remaining event time Δt in seconds ``[B]`` (>= 0)."""
        normalized = self.event_length_normalized(
            context_latents, text, state, video_mask, cross_view_allowed, use_sight_cone
        )
        return normalized * self.config.objective.event_length_scale_s


def build_model(
    config: ModelConfig,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> WallWM:
    """Build :class:`WallWM` directly on ``device`` (``"meta"`` allocates nothing)."""
    with torch.device(device if device is not None else "cpu"):
        model = WallWM(config)
    return model if dtype is None else model.to(dtype)


def _is_cross_view(name: str) -> bool:
    return "cross_view" in name or name.startswith("video_tower.view_embedding")


def parameter_counts(model: WallWM) -> dict[str, int]:
    """Parameter counts by part (works on the meta device).

    ``video_backbone``: the video tower without the multi-view additions (the part Wan weights
    map onto); ``video_cross_view``: cross-view attention, gates and per-view embedding.
    """
    counts = dict.fromkeys(
        ("text_encoder", "video_backbone", "video_cross_view", "action_tower", "event_length_head"),
        0,
    )
    for name, parameter in model.named_parameters():
        part = name.split(".", 1)[0]
        if part == "video_tower":
            part = "video_cross_view" if _is_cross_view(name) else "video_backbone"
        counts[part] += parameter.numel()
    counts["total"] = sum(counts.values())
    return counts
