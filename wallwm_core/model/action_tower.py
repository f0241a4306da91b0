"""The action tower: denoises action tokens while reading the video tower, never the reverse.

Same depth as the video tower; action block ``i`` reads the output of video block ``i``. Each
:class:`ActionBlock` (AdaLN-modulated by the action timestep) runs:

1. self-attention over the action tokens (padded steps masked as keys);
2. cross-attention to the proprioceptive-state token;
3. cross-attention to the hidden states of the matching video block (padded video tokens
   masked);
4. a gated (SwiGLU) feed-forward network.

Temporal alignment (rotary over the temporal index, all of the head dim): latent frame ``f`` has
index ``f``, the state token shares the anchor frame's index (0 by default) and action step
``k`` gets ``anchor + floor(k / K_p) + 1`` (:func:`action_temporal_positions`). Steps inside one
latent frame share an index, so a learned per-step embedding gives their order.

Batching: sample-level inputs (state, video memory) have batch ``B``; per-noise inputs (noisy
actions, timesteps, action mask) have ``B' = r * B``, sample-major (``repeat_interleave``
order), so several action noise levels reuse one video pass. Cross-attention folds the ``r``
copies into the query length, so video keys and values are never copied.

Video keys and values can be computed once with :meth:`ActionTower.build_video_memory` and
reused for every action denoising step.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from wallwm_core.model.config import ActionSpaceConfig, ActionTowerConfig, LimitsConfig
from wallwm_core.model.layers import (
    Attention,
    LayerNorm32,
    TimestepEmbedding,
    init_linear,
    key_padding_mask,
    modulate,
    modulation_table,
    rope_angles,
)
from wallwm_core.model.video_tower import VideoFeatures

NUM_MODULATIONS = 6
Rope = tuple[torch.Tensor, torch.Tensor]


def action_temporal_positions(
    num_steps: int,
    steps_per_latent_frame: int,
    anchor_frame: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Temporal index of action steps ``k = 0 .. num_steps-1``: ``anchor + k // K_p + 1``, int64."""
    if num_steps < 1 or steps_per_latent_frame < 1 or anchor_frame < 0:
        raise ValueError(
            f"need num_steps >= 1, steps_per_latent_frame >= 1, anchor_frame >= 0, got "
            f"{num_steps=} {steps_per_latent_frame=} {anchor_frame=}"
        )
    steps = torch.arange(num_steps, device=device)
    return anchor_frame + steps // steps_per_latent_frame + 1


@dataclasses.dataclass(frozen=True)
class VideoMemory:
    """Per-action-block keys and values of the video cross-attention, for a batch of ``B``.

    ``keys[i]``, ``values[i]``: ``[B, heads, Lv, head_dim]`` (keys already rotated by the video
    tokens' frame index); ``key_mask``: bool ``[B, Lv]``.
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    key_mask: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.key_mask.shape[0])


class SwiGLU(nn.Module):
    """Gated feed-forward network ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim)
        self.w3 = nn.Linear(dim, hidden_dim)
        self.w2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(nn.functional.silu(self.w1(x)) * self.w3(x))


@dataclasses.dataclass(frozen=True)
class _ActionContext:
    time_modulation: torch.Tensor  # [B', 6, D]
    state: torch.Tensor  # [B, 1, D]
    self_rope: Rope  # [T]
    self_mask: torch.Tensor | None  # [B', 1, 1, T]
    query_rope: Rope  # [r*T] for the folded cross-attention queries
    video_mask: torch.Tensor  # [B, 1, 1, Lv]
    repeats: int


class ActionBlock(nn.Module):
    """One action block; reads one video block's hidden states of width ``video_dim``."""

    def __init__(self, config: ActionTowerConfig, video_dim: int) -> None:
        super().__init__()
        dim, heads, eps, qk = config.dim, config.num_heads, config.eps, config.qk_norm
        self.norm1 = LayerNorm32(dim, eps, elementwise_affine=False)
        self.self_attn = Attention(dim, heads, qk_norm=qk, eps=eps)
        self.norm_state = LayerNorm32(dim, eps)
        self.state_attn = Attention(dim, heads, qk_norm=qk, eps=eps)
        self.norm_video = LayerNorm32(dim, eps)
        self.norm_video_context = LayerNorm32(video_dim, eps)
        self.video_attn = Attention(dim, heads, kv_dim=video_dim, qk_norm=qk, eps=eps)
        self.norm2 = LayerNorm32(dim, eps, elementwise_affine=False)
        self.ffn = SwiGLU(dim, config.ffn_dim)
        self.modulation = modulation_table(NUM_MODULATIONS, dim)

    def video_kv(self, hidden: torch.Tensor, rope: Rope) -> tuple[torch.Tensor, torch.Tensor]:
        """Video hidden states ``[B, Lv, video_dim]`` -> keys, values ``[B, heads, Lv, hd]``."""
        return self.video_attn.project_kv(self.norm_video_context(hidden), rope)

    def _folded(self, x: torch.Tensor, repeats: int) -> torch.Tensor:
        """``[r*B, T, D]`` -> ``[B, r*T, D]`` (sample-major copies side by side)."""
        return x.reshape(-1, repeats * x.shape[1], x.shape[2])

    def forward(
        self,
        x: torch.Tensor,
        ctx: _ActionContext,
        video_k: torch.Tensor,
        video_v: torch.Tensor,
    ) -> torch.Tensor:
        """``x`` ``[B', T, D]`` -> same shape."""
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (
            m[:, None, :] for m in (self.modulation + ctx.time_modulation).float().unbind(1)
        )
        h = modulate(self.norm1(x), shift_a, scale_a)
        h = self.self_attn(h, rope_q=ctx.self_rope, rope_k=ctx.self_rope, mask=ctx.self_mask)
        x = (x.float() + h.float() * gate_a).type_as(x)

        h = self.state_attn(self._folded(self.norm_state(x), ctx.repeats), ctx.state)
        x = x + h.reshape(x.shape)

        h = self._folded(self.norm_video(x), ctx.repeats)
        h = self.video_attn.attend(h, video_k, video_v, rope=ctx.query_rope, mask=ctx.video_mask)
        x = x + h.reshape(x.shape)

        h = self.ffn(modulate(self.norm2(x), shift_f, scale_f))
        return (x.float() + h.float() * gate_f).type_as(x)


class ActionTower(nn.Module):
    """The action denoiser; see the module docstring."""

    def __init__(
        self,
        config: ActionTowerConfig,
        action: ActionSpaceConfig,
        limits: LimitsConfig,
        video_dim: int,
    ) -> None:
        super().__init__()
        self.config = config
        self.action_config = action
        self.max_steps = limits.max_action_steps
        dim = config.dim
        self.action_in = nn.Linear(action.token_dim, dim)
        self.step_embedding = nn.Parameter(torch.zeros(limits.max_action_steps, dim))
        self.state_in = nn.Sequential(
            nn.Linear(action.state_dim, dim), nn.SiLU(), nn.Linear(dim, dim)
        )
        self.time = TimestepEmbedding(config.freq_dim, dim, NUM_MODULATIONS)
        self.blocks = nn.ModuleList(
            ActionBlock(config, video_dim) for _ in range(config.num_layers)
        )
        self.norm_out = LayerNorm32(dim, config.eps, elementwise_affine=False)
        self.out_modulation = modulation_table(2, dim)
        self.action_out = nn.Linear(dim, action.token_dim)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier linears, small embeddings, zero output layer."""
        init_linear(self)
        nn.init.normal_(self.step_embedding, std=0.02)
        for module in self.time.time_embedding:
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(self.action_out.weight)

    def _rope(self, positions: torch.Tensor) -> Rope:
        return rope_angles(positions[:, None], (self.config.head_dim,), self.config.rope_theta)

    def build_video_memory(self, features: VideoFeatures) -> VideoMemory:
        """Keys and values of every block's video cross-attention (compute once, reuse)."""
        if len(features.hidden_states) != len(self.blocks):
            raise ValueError(
                f"got {len(features.hidden_states)} video blocks' features for "
                f"{len(self.blocks)} action blocks"
            )
        grid = features.grid
        device = features.token_mask.device
        # Token order (view, frame, patch): the temporal index is the frame.
        frames = torch.arange(grid.num_frames, device=device)
        frame_index = frames[None, :, None].expand(
            grid.num_views, grid.num_frames, grid.tokens_per_view_frame
        )
        rope = self._rope(frame_index.reshape(-1))
        keys, values = [], []
        for block, hidden in zip(self.blocks, features.hidden_states, strict=True):
            k, v = block.video_kv(hidden.flatten(1, 3), rope)
            keys.append(k)
            values.append(v)
        return VideoMemory(tuple(keys), tuple(values), features.token_mask.flatten(1))

    def forward(
        self,
        noisy_actions: torch.Tensor,
        timesteps: torch.Tensor,
        state: torch.Tensor,
        video: VideoMemory | VideoFeatures,
        action_mask: torch.Tensor | None = None,
        anchor_frame: int = 0,
    ) -> torch.Tensor:
        """Predict the flow-matching velocity of noisy action tokens.

        Args:
            noisy_actions: normalised action tokens ``[B', T, token_dim]``, ``T <= max_steps``.
            timesteps: action noise levels ``[B']``.
            state: normalised proprioceptive state ``[B, state_dim]``.
            video: :class:`VideoMemory` (or :class:`VideoFeatures`, projected here) of batch
                ``B``; ``B'`` must be a multiple of ``B`` (sample-major copies).
            action_mask: bool ``[B', T]``, False on padded steps.
            anchor_frame: latent frame index of the observation (state) token.

        Returns:
            velocity ``[B', T, token_dim]``, zero on padded steps.
        """
        if isinstance(video, VideoFeatures):
            video = self.build_video_memory(video)
        token_dim = self.action_config.token_dim
        if noisy_actions.ndim != 3 or noisy_actions.shape[-1] != token_dim:
            raise ValueError(
                f"noisy actions must be [B', T, {token_dim}], got {tuple(noisy_actions.shape)}"
            )
        batch_noise, steps = noisy_actions.shape[:2]
        if steps > self.max_steps:
            raise ValueError(
                f"{steps} action steps exceed limits.max_action_steps={self.max_steps}"
            )
        batch = video.batch_size
        if batch_noise % batch != 0:
            raise ValueError(f"action batch {batch_noise} is not a multiple of video batch {batch}")
        if state.shape != (batch, self.action_config.state_dim):
            raise ValueError(
                f"state must be [B, state_dim] = [{batch}, {self.action_config.state_dim}], "
                f"got {tuple(state.shape)}"
            )
        if timesteps.shape != (batch_noise,):
            raise ValueError(f"timesteps must be [{batch_noise}], got {tuple(timesteps.shape)}")
        if action_mask is not None and (
            action_mask.shape != (batch_noise, steps) or action_mask.dtype != torch.bool
        ):
            raise ValueError(
                f"action_mask must be bool [{batch_noise}, {steps}], got "
                f"{action_mask.dtype} {list(action_mask.shape)}"
            )
        repeats = batch_noise // batch
        device = noisy_actions.device
        weight = self.action_in.weight

        positions = action_temporal_positions(
            steps, self.action_config.steps_per_latent_frame, anchor_frame, device
        )
        time_embedding, time_modulation = self.time(timesteps)
        ctx = _ActionContext(
            time_modulation=time_modulation,
            state=self.state_in(state.to(weight.dtype))[:, None],
            self_rope=self._rope(positions),
            self_mask=None if action_mask is None else key_padding_mask(action_mask),
            query_rope=self._rope(positions.repeat(repeats)),
            video_mask=key_padding_mask(video.key_mask),
            repeats=repeats,
        )

        x = self.action_in(noisy_actions.to(weight.dtype)) + self.step_embedding[:steps]
        for block, k, v in zip(self.blocks, video.keys, video.values, strict=True):
            x = block(x, ctx, k, v)

        mod = (self.out_modulation + time_embedding[:, None]).float()
        out = self.action_out(modulate(self.norm_out(x), mod[:, 0:1], mod[:, 1:2]))
        if action_mask is not None:
            out = out * action_mask[..., None]
        return out
