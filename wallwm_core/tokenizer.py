"""A self-contained byte-level tokenizer for instructions and captions (no vocabulary download).

Ids: 0 padding, 1 beginning of text, 2 end of text, 3..258 the UTF-8 bytes. Every string
round-trips exactly; the text encoder and the VLM share this vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
BYTE_OFFSET = 3
VOCAB_SIZE = BYTE_OFFSET + 256


class ByteTokenizer:
    """Encodes text as ``[BOS, bytes..., EOS]`` ids, padded or truncated to a fixed length."""

    vocab_size = VOCAB_SIZE
    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID

    def encode_one(self, text: str, max_length: int) -> list[int]:
        """Ids of one text, truncated so that BOS and EOS always fit in ``max_length``."""
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (BOS + EOS), got {max_length}")
        body = [BYTE_OFFSET + b for b in text.encode("utf-8")][: max_length - 2]
        return [BOS_ID, *body, EOS_ID]

    def encode(self, texts: Sequence[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-encode: ids ``[B, max_length]`` int64 and a bool mask, True on real tokens."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of strings; use [text] for one")
        ids = torch.full((len(texts), max_length), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            encoded = self.encode_one(text, max_length)
            ids[row, : len(encoded)] = torch.tensor(encoded, dtype=torch.long)
        return ids, ids != PAD_ID

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of one id sequence; stops at EOS, skips BOS/padding, replaces invalid UTF-8."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = bytearray()
        for token in ids:
            if token == EOS_ID:
                break
            if token >= BYTE_OFFSET:
                out.append(token - BYTE_OFFSET)
        return out.decode("utf-8", errors="replace")
