"""Text encoders: instruction / caption strings -> token embeddings for the video tower.

Two implementations of :class:`TextEncoder`:

- :class:`ByteTextEncoder`: a small trainable transformer encoder over the shared
  :class:`~wallwm_core.tokenizer.ByteTokenizer` (no downloads); part of the model's weights.
- :class:`HFT5TextEncoder`: a frozen Hugging Face (um)T5 encoder read from a LOCAL directory
  (Wan uses umT5-XXL, width 4096). ``transformers`` is imported lazily and is not a dependency
  of this project: without it, or without the directory, construction raises
  :class:`TextEncoderUnavailableError` saying which.

Both return a :class:`TextEmbedding`: tokens ``[B, L, dim]`` with padded positions zeroed and a
bool mask ``[B, L]`` (True on real tokens).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from wallwm_core.model.config import TextEncoderConfig
from wallwm_core.tokenizer import PAD_ID, VOCAB_SIZE, ByteTokenizer


class TextEncoderUnavailableError(RuntimeError):
    """An external text encoder cannot be loaded (missing package or weights)."""


@dataclasses.dataclass(frozen=True)
class TextEmbedding:
    """Encoded text: ``tokens`` ``[B, L, dim]`` (zero at padding), ``mask`` bool ``[B, L]``."""

    tokens: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.tokens.ndim != 3 or self.mask.shape != self.tokens.shape[:2]:
            raise ValueError(
                f"text tokens must be [B, L, dim] with mask [B, L], got "
                f"{tuple(self.tokens.shape)} and {tuple(self.mask.shape)}"
            )
        if self.mask.dtype != torch.bool:
            raise ValueError(f"text mask must be bool, got {self.mask.dtype}")

    def repeat_interleave(self, repeats: int) -> TextEmbedding:
        """Each sample repeated ``repeats`` times in a row (``[B*r, L, dim]``)."""
        return TextEmbedding(
            self.tokens.repeat_interleave(repeats, 0), self.mask.repeat_interleave(repeats, 0)
        )


@runtime_checkable
class TextEncoder(Protocol):
    """Encodes a batch of strings into a :class:`TextEmbedding` of width ``output_dim``."""

    output_dim: int
    max_length: int

    def encode_texts(self, texts: Sequence[str]) -> TextEmbedding: ...


class ByteTextEncoder(nn.Module):
    """Byte-token embedding + learned positions + a pre-norm transformer encoder.

    ``forward(ids [B, L], mask [B, L]) -> TextEmbedding`` with ``L <= config.max_length``.
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        super().__init__()
        if config.kind != "byte_transformer":
            raise ValueError(f"ByteTextEncoder needs kind 'byte_transformer', got {config.kind!r}")
        self.config = config
        self.output_dim = config.dim
        self.max_length = config.max_length
        self.tokenizer = ByteTokenizer()
        self.token_embedding = nn.Embedding(VOCAB_SIZE, config.dim, padding_idx=PAD_ID)
        self.position_embedding = nn.Parameter(torch.zeros(config.max_length, config.dim))
        layer = nn.TransformerEncoderLayer(
            d_model=config.dim,
            nhead=config.num_heads,
            dim_feedforward=config.ffn_dim,
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> TextEmbedding:
        """``ids`` int64 ``[B, L]``, ``mask`` bool ``[B, L]`` -> tokens ``[B, L, dim]``."""
        if ids.ndim != 2 or mask.shape != ids.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"text ids must be [B, L] with a bool mask of the same shape, got "
                f"{tuple(ids.shape)} {tuple(mask.shape)} {mask.dtype}"
            )
        if ids.shape[1] > self.max_length:
            raise ValueError(f"text length {ids.shape[1]} exceeds max_length={self.max_length}")
        if bool(((ids < 0) | (ids >= VOCAB_SIZE)).any()):
            raise ValueError(f"text ids must lie in [0, {VOCAB_SIZE})")
        x = self.token_embedding(ids) + self.position_embedding[: ids.shape[1]]
        # A row without any real token would make every attention row empty (NaN).
        safe_mask = mask | ~mask.any(dim=1, keepdim=True)
        x = self.layers(x, src_key_padding_mask=~safe_mask)
        x = self.norm(x) * mask[..., None]
        return TextEmbedding(x, mask)

    def encode_texts(self, texts: Sequence[str]) -> TextEmbedding:
        """Tokenise (padded to ``max_length``) and encode on this module's device."""
        ids, mask = self.tokenizer.encode(texts, self.max_length)
        device = self.token_embedding.weight.device
        return self(ids.to(device), mask.to(device))


class HFT5TextEncoder:
    """A frozen Hugging Face T5 / umT5 encoder from a local directory (no downloads).

    Raises :class:`TextEncoderUnavailableError` if ``path`` is not a directory or the
    ``transformers`` package is not installed.
    """

    def __init__(
        self,
        path: str | Path,
        max_length: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        path = Path(path)
        if not path.is_dir():
            raise TextEncoderUnavailableError(
                f"T5 encoder directory {str(path)!r} does not exist (text_encoder.hf_path must "
                "point at a local copy of the weights; nothing is downloaded)"
            )
        try:
            transformers = importlib.import_module("transformers")
        except ImportError as error:
            raise TextEncoderUnavailableError(
                "the 'transformers' package is not installed; it is needed only for "
                "text_encoder.kind 'hf_t5' (install it, or use 'byte_transformer')"
            ) from error
        model_config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
        model_class = (
            transformers.UMT5EncoderModel
            if model_config.model_type == "umt5"
            else transformers.T5EncoderModel
        )
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = model_class.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
        self.model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.max_length = max_length
        self.output_dim = int(model_config.d_model)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> TextEmbedding:
        """Tokenise with the checkpoint's tokenizer (padded to ``max_length``) and encode."""
        batch = self.tokenizer(
            list(texts),
            padding="max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device).bool()
        tokens = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return TextEmbedding(tokens * mask[..., None], mask)


def load_hf_text_encoder(
    config: TextEncoderConfig,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> HFT5TextEncoder:
    """The ``hf_t5`` encoder named by ``config.hf_path``; checks its width against ``config.dim``."""
    if config.kind != "hf_t5":
        raise ValueError(f"text_encoder.kind is {config.kind!r}, not 'hf_t5'")
    if config.hf_path is None:
        raise TextEncoderUnavailableError("text_encoder.hf_path is not set")
    encoder = HFT5TextEncoder(config.hf_path, config.max_length, device, dtype)
    if encoder.output_dim != config.dim:
        raise ValueError(
            f"the T5 encoder at {config.hf_path} has width {encoder.output_dim}, "
            f"but text_encoder.dim={config.dim}"
        )
    return encoder
