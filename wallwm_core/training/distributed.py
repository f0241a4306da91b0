"""torchrun integration: process group, DDP or FSDP2 wrapping, small collectives.

``torchrun --nproc-per-node N -m wallwm_core.training.train CONFIG.yaml`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous; :func:`init_distributed` reads them (gloo on
the CPU, NCCL on CUDA). Without them the run is a single process and every helper here is a
no-op. Rank 0 logs and writes checkpoints; all ranks run validation on their share of the
windows and the results are summed.

The model's training and sampling code calls methods (``video_forward``, ``action_forward``),
not ``forward``: :class:`ModelRunner` runs any function of the model inside ``forward`` so
DDP's gradient reducer and FSDP2's unshard hooks see every call.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` = this rank's CUDA device when available, else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("runtime.device=cuda but no CUDA device is available")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def init_distributed(device_name: str) -> DistInfo:
    """Join the torchrun job described by the environment, or run as a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if world_size <= 1:
        return DistInfo(device=device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class ModelRunner(nn.Module):
    """``runner(fn, *args)`` calls ``fn(model, *args)`` inside ``forward`` (see module doc)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return fn(self.model, *args, **kwargs)


BLOCK_LISTS = ("blocks", "layers")
ROOT_UNIT_PREFIXES = ("action_tower.",)


def wrap(runner: ModelRunner, info: DistInfo, parallel: str) -> nn.Module:
    """The runner under DDP or FSDP2 (``fully_shard`` on each transformer block, then the
    root), or unchanged for a single process."""
    if not info.distributed:
        return runner
    if parallel == "ddp":
        device_ids = [info.local_rank] if info.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(runner, device_ids=device_ids)
    from torch.distributed.fsdp import fully_shard

    for block in transformer_blocks(runner.model):
        fully_shard(block)
    fully_shard(runner)
    return runner


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """The FSDP2 sharding units below the root: the blocks of every ``blocks`` / ``layers``
    ModuleList whose parameters are only used inside the block's own ``forward`` (FSDP2
    gathers a unit's parameters in its forward hooks). The action tower's blocks are not: the
    video keys/values are computed once per window by a block method, so they stay in the
    root unit."""
    return [
        block
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList)
        and name.rsplit(".", 1)[-1] in BLOCK_LISTS
        and not name.startswith(ROOT_UNIT_PREFIXES)
        for block in module
    ]


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce ``tensor`` over all ranks in place (sum or max); a no-op for one process."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor of an FSDP2 shard (a DTensor; collective), else the tensor itself."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def like_shard(full: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``full`` laid out like ``reference`` (its local shard when ``reference`` is a DTensor)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(reference, DTensor):
        return distribute_tensor(
            full.to(reference.device), reference.device_mesh, reference.placements
        )
    return full
