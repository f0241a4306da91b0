"""A Hugging Face causal LM from a LOCAL directory, as a :class:`CausalLM` (text only).

``transformers`` is imported only when loading (it is not a dependency of wallwm); nothing is
ever downloaded (``local_files_only=True``, no remote code). The wrapper expects the
Llama / Qwen2 / Qwen3 layout: ``model.model.{embed_tokens, layers, norm, rotary_emb}`` and
``model.lm_head``, full-attention decoder layers called as
``layer(hidden, attention_mask=, position_ids=, position_embeddings=(cos, sin))``
(transformers >= 4.48). Untested here (transformers is not installed); only its error paths are.

The model's own vocabulary differs from the byte tokenizer: pass a matching tokenizer to
:class:`~wallwm_core.vlm.model.WallVLM` (:func:`load_hf_tokenizer`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn


def _import_transformers() -> ModuleType:
    try:
        return importlib.import_module("transformers")
    except ImportError as error:
        raise ImportError(
            "the Hugging Face adapter needs the `transformers` package, which is not installed "
            "in this environment (it is not a wallwm dependency); install it to load a local "
            "Hugging Face model"
        ) from error


def _check_model_dir(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no local Hugging Face model at {path} (nothing is downloaded)")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face model directory (no config.json)")
    return path


class HFCausalLM(nn.Module):
    """Wraps a loaded ``transformers`` causal LM; see the module doc for the expected layout."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        decoder = getattr(model, "model", None)
        missing = [
            name
            for name in ("embed_tokens", "layers", "norm", "rotary_emb")
            if not hasattr(decoder, name)
        ]
        if missing or not hasattr(model, "lm_head"):
            raise TypeError(
                f"unsupported architecture {type(model).__name__}: need model.model."
                "{embed_tokens, layers, norm, rotary_emb} and model.lm_head "
                f"(missing {missing or ['lm_head']})"
            )
        self.model = model
        self.decoder = decoder

    @property
    def width(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.decoder.layers)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    @property
    def accepts_images(self) -> bool:
        return False

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder.embed_tokens(ids)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        raise ValueError("the Hugging Face adapter is text-only; pass no images")

    def run_layers(
        self,
        hidden: torch.Tensor,
        start: int,
        end: int,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
    ) -> torch.Tensor:
        if not 0 <= start <= end <= self.num_layers:
            raise ValueError(f"layer range [{start}, {end}) outside [0, {self.num_layers}]")
        # HF layers take an additive float mask [B, 1, S, S].
        additive = torch.zeros(attention_mask.shape, dtype=hidden.dtype, device=hidden.device)
        additive = additive.masked_fill(~attention_mask, torch.finfo(hidden.dtype).min)
        additive = additive.unsqueeze(1)
        cos_sin = self.decoder.rotary_emb(hidden, positions)
        for layer in self.decoder.layers[start:end]:
            out = layer(
                hidden,
                attention_mask=additive,
                position_ids=positions,
                position_embeddings=cos_sin,
            )
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder.norm(hidden)

    def lm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(hidden)


def load_hf_causal_lm(path: str | Path, dtype: torch.dtype | None = None) -> HFCausalLM:
    """Load the causal LM in the local directory ``path`` (never downloads)."""
    path = _check_model_dir(path)
    transformers = _import_transformers()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, local_files_only=True, trust_remote_code=False, torch_dtype=dtype
    )
    return HFCausalLM(model)


class HFTokenizer:
    """A ``transformers`` tokenizer behind the :class:`TextTokenizer` interface.

    Sequences are ``[start, tokens..., eos]`` where ``start`` is the model's BOS token or, for
    models without one (Qwen), its EOS token; masks mark real tokens (the pad id may repeat a
    real id). ``decode`` stops at EOS and skips special tokens.
    """

    def __init__(self, tokenizer: Any) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no EOS token")
        self.tokenizer = tokenizer
        self.eos_id = int(tokenizer.eos_token_id)
        bos = tokenizer.bos_token_id
        self.bos_id = int(bos) if bos is not None else self.eos_id
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_id
        self.vocab_size = len(tokenizer)

    def encode(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of strings; use [text] for one")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (BOS + EOS), got {max_length}")
        ids = torch.full((len(texts), max_length), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(texts), max_length), dtype=torch.bool)
        for row, text in enumerate(texts):
            body = self.tokenizer(text, add_special_tokens=False)["input_ids"][: max_length - 2]
            encoded = [self.bos_id, *body, self.eos_id]
            ids[row, : len(encoded)] = torch.tensor(encoded)
            mask[row, : len(encoded)] = True
        return ids, mask

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def load_hf_tokenizer(path: str | Path) -> HFTokenizer:
    """The tokenizer in the local directory ``path`` (never downloads)."""
    path = _check_model_dir(path)
    transformers = _import_transformers()
    return HFTokenizer(transformers.AutoTokenizer.from_pretrained(path, local_files_only=True))
