"""The video tower: a Wan2.1-style text-to-video DiT made multi-view.

Input latents ``[B, V, F, C, h, w]`` (V camera views, F latent frames) are patchified per view
with a ``(1, ph, pw)`` Conv3d into tokens ``[B, V, F, N, D]`` (``N = (h/ph) * (w/pw)``, row-major)
plus a learned per-view embedding. Each :class:`VideoBlock` then runs, with AdaLN modulation from
the timestep (per latent frame, so clean context frames and noisy future frames can share a
sequence):

1. self-attention within each view over all its frames (the single-view Wan backbone),
   rotary positions over (frame, height, width, view);
2. **cross-view attention** within each latent frame over the tokens of all views (order
   view-major then row-major, as in :mod:`wallwm_core.model.sight_cone`), its output scaled by a
   per-channel gate that starts at zero, so at initialisation the tower is exactly the
   single-view backbone; the sight-cone mask restricts which cross-view pairs may attend;
3. cross-attention to the text tokens;
4. a GELU feed-forward network.

The per-block outputs are returned as :class:`VideoFeatures` for the action tower. Padded
latents (``video_mask`` False) are zeroed at the input, tokens with no valid latent pixel are
masked as attention keys everywhere, and the output velocity is zero there.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from wallwm_core.model.config import VideoTowerConfig
from wallwm_core.model.layers import (
    Attention,
    LayerNorm32,
    TimestepEmbedding,
    init_linear,
    key_padding_mask,
    modulate,
    modulation_table,
    pair_mask,
    rope_angles,
)
from wallwm_core.model.text_encoder import TextEmbedding

NUM_MODULATIONS = 6  # shift, scale, gate for attention and for the FFN

Rope = tuple[torch.Tensor, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class VideoGrid:
    """Token grid of a video: views, latent frames and the patch grid of one latent frame."""

    num_views: int
    num_frames: int
    height: int
    width: int

    @property
    def tokens_per_view_frame(self) -> int:
        return self.height * self.width

    @property
    def tokens_per_frame(self) -> int:
        """Tokens of one latent frame over all views (the sight-cone mask's N)."""
        return self.num_views * self.height * self.width


@dataclasses.dataclass(frozen=True)
class VideoFeatures:
    """Per-block video hidden states, what the action tower reads.

    ``hidden_states[i]``: output of video block ``i``, ``[B, V, F, N, D]``; ``token_mask``:
    bool ``[B, V, F, N]``, False for padded tokens (never attend to them).
    """

    hidden_states: tuple[torch.Tensor, ...]
    token_mask: torch.Tensor
    grid: VideoGrid

    def detach(self) -> VideoFeatures:
        return dataclasses.replace(
            self, hidden_states=tuple(h.detach() for h in self.hidden_states)
        )

    def select(self, index: torch.Tensor | slice) -> VideoFeatures:
        """The features of a subset of the batch (index along B)."""
        return dataclasses.replace(
            self,
            hidden_states=tuple(h[index] for h in self.hidden_states),
            token_mask=self.token_mask[index],
        )


@dataclasses.dataclass(frozen=True)
class VideoOutput:
    """``velocity`` ``[B, V, F, C, h, w]`` and, if requested, the per-block ``features``."""

    velocity: torch.Tensor
    features: VideoFeatures | None


@dataclasses.dataclass(frozen=True)
class _BlockContext:
    """Everything a block needs besides its input, computed once per forward."""

    time_modulation: torch.Tensor  # [B, F, 6, D]
    text: torch.Tensor  # [B, Lt, D]
    text_mask: torch.Tensor  # [B, 1, 1, Lt]
    view_rope: Rope  # within-view attention, [F*N, head_dim/2]
    view_mask: torch.Tensor | None  # [B*V, 1, 1, F*N]
    cross_view_rope: Rope  # cross-view attention, [V*N, head_dim/2]
    cross_view_mask: torch.Tensor | None  # [B*F, 1, 1 or V*N, V*N]


class VideoBlock(nn.Module):
    """One DiT block; parameter names follow Wan's ``WanAttentionBlock`` where they exist."""

    def __init__(self, config: VideoTowerConfig) -> None:
        super().__init__()
        dim, eps = config.dim, config.eps
        self.norm1 = LayerNorm32(dim, eps, elementwise_affine=False)
        self.self_attn = Attention(dim, config.num_heads, qk_norm=config.qk_norm, eps=eps)
        self.cross_view = config.cross_view_attention
        if self.cross_view:
            self.norm_cross_view = LayerNorm32(dim, eps)
            self.cross_view_attn = Attention(dim, config.num_heads, qk_norm=config.qk_norm, eps=eps)
            # Zero-initialised: at init the block is exactly the single-view backbone.
            self.cross_view_gate = nn.Parameter(torch.zeros(dim))
        self.norm3 = LayerNorm32(dim, eps) if config.cross_attn_norm else nn.Identity()
        self.cross_attn = Attention(dim, config.num_heads, qk_norm=config.qk_norm, eps=eps)
        self.norm2 = LayerNorm32(dim, eps, elementwise_affine=False)
        self.ffn = nn.Sequential(
            nn.Linear(dim, config.ffn_dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(config.ffn_dim, dim),
        )
        self.modulation = modulation_table(NUM_MODULATIONS, dim)

    def forward(self, x: torch.Tensor, ctx: _BlockContext) -> torch.Tensor:
        """``x`` ``[B, V, F, N, D]`` -> same shape."""
        batch, views, frames, tokens, dim = x.shape
        # [B, F, 6, D] -> six [B, 1, F, 1, D] tables broadcasting over views and tokens.
        mod = (self.modulation[None] + ctx.time_modulation).float()
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = (
            m[:, None, :, None, :] for m in mod.unbind(2)
        )

        h = modulate(self.norm1(x), shift_a, scale_a).reshape(batch * views, frames * tokens, dim)
        h = self.self_attn(h, rope_q=ctx.view_rope, rope_k=ctx.view_rope, mask=ctx.view_mask)
        x = (x.float() + h.reshape(x.shape).float() * gate_a).type_as(x)

        if self.cross_view and views > 1:
            h = self.norm_cross_view(x).transpose(1, 2).reshape(batch * frames, -1, dim)
            rope = ctx.cross_view_rope
            h = self.cross_view_attn(h, rope_q=rope, rope_k=rope, mask=ctx.cross_view_mask)
            h = h.reshape(batch, frames, views, tokens, dim).transpose(1, 2)
            x = x + self.cross_view_gate * h

        h = self.cross_attn(self.norm3(x).reshape(batch, -1, dim), ctx.text, mask=ctx.text_mask)
        x = x + h.reshape(x.shape)

        h = self.ffn(modulate(self.norm2(x), shift_f, scale_f))
        return (x.float() + h.float() * gate_f).type_as(x)


class VideoHead(nn.Module):
    """Final AdaLN + linear projection to per-patch latent velocities (Wan's ``Head``)."""

    def __init__(self, dim: int, out_features: int, eps: float) -> None:
        super().__init__()
        self.norm = LayerNorm32(dim, eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_features)
        self.modulation = modulation_table(2, dim)

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, V, F, N, D]``, ``time_embedding`` ``[B, F, D]`` -> ``[B, V, F, N, out]``."""
        mod = (self.modulation[None] + time_embedding[:, :, None]).float()  # [B, F, 2, D]
        shift, scale = (m[:, None, :, None, :] for m in mod.unbind(2))
        return self.head(modulate(self.norm(x), shift, scale))


class VideoTower(nn.Module):
    """The multi-view video denoiser; see the module docstring."""

    def __init__(self, config: VideoTowerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.patch_size = config.patch_size
        self.patch_embedding = nn.Conv3d(
            config.in_channels, dim, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.view_embedding = nn.Parameter(torch.zeros(config.max_views, dim))
        self.text_embedding = nn.Sequential(
            nn.Linear(config.text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim)
        )
        self.time = TimestepEmbedding(config.freq_dim, dim, NUM_MODULATIONS)
        self.blocks = nn.ModuleList(VideoBlock(config) for _ in range(config.num_layers))
        _, patch_h, patch_w = config.patch_size
        self.head = VideoHead(dim, config.out_channels * patch_h * patch_w, config.eps)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier linears, small embeddings, zero output head, zero cross-view gates."""
        init_linear(self)
        nn.init.xavier_uniform_(self.patch_embedding.weight.flatten(1))
        nn.init.zeros_(self.patch_embedding.bias)
        for module in (*self.text_embedding, *self.time.time_embedding):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(self.head.head.weight)
        nn.init.zeros_(self.view_embedding)
        for block in self.blocks:
            if block.cross_view:
                nn.init.zeros_(block.cross_view_gate)

    # ----------------------------------------------------------------------------------------
    def grid_of(self, latents: torch.Tensor) -> VideoGrid:
        """Token grid of latents ``[B, V, F, C, h, w]``; raises ValueError on a bad shape."""
        config = self.config
        if latents.ndim != 6 or latents.shape[3] != config.in_channels:
            raise ValueError(
                f"video latents must be [B, V, F, {config.in_channels}, h, w], "
                f"got {tuple(latents.shape)}"
            )
        _, views, frames, _, height, width = latents.shape
        _, patch_h, patch_w = config.patch_size
        if height % patch_h or width % patch_w:
            raise ValueError(
                f"latent size {height}x{width} is not divisible by the patch size "
                f"{patch_h}x{patch_w}"
            )
        if views > config.max_views:
            raise ValueError(f"{views} views exceed video_tower.max_views={config.max_views}")
        return VideoGrid(views, frames, height // patch_h, width // patch_w)

    def embed_text(self, text: TextEmbedding) -> torch.Tensor:
        """Text tokens ``[B, Lt, text_dim]`` -> ``[B, Lt, D]`` (zero at padding)."""
        if text.tokens.shape[-1] != self.config.text_dim:
            raise ValueError(
                f"text embeddings have width {text.tokens.shape[-1]}, "
                f"video_tower.text_dim={self.config.text_dim}"
            )
        weight = self.text_embedding[0].weight
        return self.text_embedding(text.tokens.to(weight.dtype)) * text.mask[..., None]

    def _token_mask(self, video_mask: torch.Tensor, grid: VideoGrid) -> torch.Tensor:
        """``[B, V, F, h, w]`` -> ``[B, V, F, N]``: a token is valid if any of its pixels is."""
        _, patch_h, patch_w = self.patch_size
        patches = video_mask.unflatten(3, (grid.height, patch_h)).unflatten(
            5, (grid.width, patch_w)
        )
        return patches.any(dim=6).any(dim=4).flatten(3)

    def _ropes(self, grid: VideoGrid, device: torch.device) -> tuple[Rope, Rope]:
        """Rotary tables for within-view ``[F*N]`` and cross-view ``[V*N]`` sequences.

        Inside one view every token shares the view index and inside one latent frame every
        token shares the frame index; those axes would cancel in q.k, so they are set to 0.
        """
        config = self.config

        def positions(*sizes: int) -> torch.Tensor:
            axes = [torch.arange(size, device=device) for size in sizes]
            return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 4)

        view_positions = positions(grid.num_frames, grid.height, grid.width, 1)
        cross_positions = positions(1, grid.num_views, grid.height, grid.width)[:, [0, 2, 3, 1]]
        return (
            rope_angles(view_positions, config.rope_axes_dim, config.rope_theta),
            rope_angles(cross_positions, config.rope_axes_dim, config.rope_theta),
        )

    def forward(
        self,
        latents: torch.Tensor,
        timesteps: torch.Tensor,
        text: TextEmbedding,
        video_mask: torch.Tensor | None = None,
        cross_view_allowed: torch.Tensor | None = None,
        use_sight_cone: bool | None = None,
        return_features: bool = True,
    ) -> VideoOutput:
        """Predict the flow-matching velocity of noisy video latents.

        Args:
            latents: noisy latents ``[B, V, F, C, h, w]``.
            timesteps: ``[B]`` (one per sample) or ``[B, F]`` (per latent frame; 0 = clean).
            text: text embedding of width ``text_dim`` (``[B, Lt, text_dim]`` + mask).
            video_mask: bool ``[B, V, F, h, w]``, False at padding / out-of-frame latents.
            cross_view_allowed: bool ``[B, V*N, V*N]`` sight-cone mask of one latent frame
                (:func:`~wallwm_core.model.sight_cone.sight_cone_allowed` on the patch grid).
            use_sight_cone: apply ``cross_view_allowed`` (default: ``sight_cone.enabled``). Without
                a mask, or when False, all cross-view pairs may attend.
            return_features: also return the per-block hidden states.

        Returns:
            :class:`VideoOutput` with velocity ``[B, V, F, C, h, w]`` (zero where not valid).
        """
        grid = self.grid_of(latents)
        batch, views, frames = latents.shape[:3]
        device = latents.device
        if timesteps.ndim == 1:
            timesteps = timesteps[:, None].expand(batch, frames)
        if timesteps.shape != (batch, frames):
            raise ValueError(
                f"timesteps must be [B] or [B, F] = [{batch}, {frames}], "
                f"got {tuple(timesteps.shape)}"
            )
        if text.tokens.shape[0] != batch:
            raise ValueError(f"text batch {text.tokens.shape[0]} != video batch {batch}")

        if video_mask is not None:
            expected = (batch, views, frames, *latents.shape[-2:])
            if video_mask.shape != expected or video_mask.dtype != torch.bool:
                raise ValueError(
                    f"video_mask must be bool {list(expected)}, got "
                    f"{video_mask.dtype} {list(video_mask.shape)}"
                )
            latents = latents * video_mask[:, :, :, None]
            token_mask = self._token_mask(video_mask, grid)
        else:
            token_mask = torch.ones(
                batch, views, frames, grid.tokens_per_view_frame, dtype=torch.bool, device=device
            )

        weight = self.patch_embedding.weight
        x = self.patch_embedding(latents.flatten(0, 1).transpose(1, 2).to(weight.dtype))
        # [B*V, D, F, h', w'] -> [B, V, F, N, D]
        x = x.flatten(3).permute(0, 2, 3, 1).unflatten(0, (batch, views))
        x = x + self.view_embedding[:views, None, None, :]

        time_embedding, time_modulation = self.time(timesteps)
        view_rope, cross_view_rope = self._ropes(grid, device)
        ctx = _BlockContext(
            time_modulation=time_modulation,
            text=self.embed_text(text),
            text_mask=key_padding_mask(text.mask),
            view_rope=view_rope,
            view_mask=None
            if video_mask is None
            else key_padding_mask(token_mask.flatten(0, 1).flatten(1)),
            cross_view_rope=cross_view_rope,
            cross_view_mask=self._cross_view_mask(
                token_mask if video_mask is not None else None,
                cross_view_allowed,
                self.config.sight_cone.enabled if use_sight_cone is None else use_sight_cone,
                grid,
                batch,
            ),
        )

        hidden_states = []
        for block in self.blocks:
            x = block(x, ctx)
            if return_features:
                hidden_states.append(x)

        out = self.head(x, time_embedding)  # [B, V, F, N, ph*pw*C]
        velocity = self._unpatchify(out, grid)
        if video_mask is not None:
            velocity = velocity * video_mask[:, :, :, None]
        features = (
            VideoFeatures(tuple(hidden_states), token_mask, grid) if return_features else None
        )
        return VideoOutput(velocity, features)

    def _cross_view_mask(
        self,
        token_mask: torch.Tensor | None,
        cross_view_allowed: torch.Tensor | None,
        use_sight_cone: bool,
        grid: VideoGrid,
        batch: int,
    ) -> torch.Tensor | None:
        """Mask for the frame-local cross-view attention over ``[B*F, V*N]`` sequences."""
        frames, n = grid.num_frames, grid.tokens_per_frame
        key_valid = None
        if token_mask is not None:
            key_valid = token_mask.transpose(1, 2).reshape(batch * frames, n)
        if use_sight_cone and cross_view_allowed is not None:
            if cross_view_allowed.shape != (batch, n, n) or cross_view_allowed.dtype != torch.bool:
                raise ValueError(
                    f"cross_view_allowed must be bool [B, V*N, V*N] = [{batch}, {n}, {n}], got "
                    f"{cross_view_allowed.dtype} {list(cross_view_allowed.shape)}"
                )
            pairs = cross_view_allowed[:, None].expand(batch, frames, n, n).reshape(-1, n, n)
            return pair_mask(pairs, key_valid)
        return None if key_valid is None else key_padding_mask(key_valid)

    def _unpatchify(self, out: torch.Tensor, grid: VideoGrid) -> torch.Tensor:
        """``[B, V, F, N, ph*pw*C]`` (patch-major channels, as Wan) -> ``[B, V, F, C, h, w]``."""
        _, patch_h, patch_w = self.patch_size
        channels = self.config.out_channels
        x = out.unflatten(3, (grid.height, grid.width)).unflatten(-1, (patch_h, patch_w, channels))
        # [B, V, F, h', w', ph, pw, C] -> [B, V, F, C, h', ph, w', pw]
        x = x.permute(0, 1, 2, 7, 3, 5, 4, 6)
        return x.reshape(*x.shape[:4], grid.height * patch_h, grid.width * patch_w)
