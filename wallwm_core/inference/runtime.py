"""Where and in which precision inference runs.

Automatic choice: CUDA with bfloat16 autocast when a GPU is available, otherwise the CPU in
float32. Both are overridable (``device="cpu"``, ``dtype="float32"``). Weights stay float32;
bfloat16 is applied through ``torch.autocast`` so norms and the Euler integration stay float32.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import torch

DTYPE_NAMES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclasses.dataclass(frozen=True)
class Runtime:
    """A device and the compute dtype used on it."""

    device: torch.device
    dtype: torch.dtype

    @contextlib.contextmanager
    def inference_context(self) -> Iterator[None]:
        """``torch.autocast`` to ``dtype`` (nothing for float32), gradients off."""
        with torch.inference_mode():
            if self.dtype == torch.float32:
                yield
            else:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    yield


def _parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        parsed = dtype
    elif isinstance(dtype, str) and dtype.lower() in DTYPE_NAMES:
        parsed = DTYPE_NAMES[dtype.lower()]
    else:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPE_NAMES)}")
    if parsed not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {parsed}")
    return parsed


def select_runtime(
    device: torch.device | str | None = None, dtype: torch.dtype | str | None = None
) -> Runtime:
    """CUDA + bfloat16 when available, else CPU + float32; ``device``/``dtype`` override."""
    if device is None:
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"unknown device {device!r}: {error}") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(resolved)!r} requested but CUDA is not available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {str(resolved)!r}")
    if dtype is None:
        chosen = torch.bfloat16 if resolved.type == "cuda" else torch.float32
    else:
        chosen = _parse_dtype(dtype)
    return Runtime(resolved, chosen)
