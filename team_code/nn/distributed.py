"""Multi-GPU and multi-node training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N train_model.py DATA MODEL --classifiers parallel_cnn`` starts N
processes with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set; :func:`setup` initialises the
process group (``nccl`` on CUDA, ``gloo`` on CPU) once, and :func:`wrap` wraps a model in DDP.
Only rank 0 writes files (:func:`is_main`). Outside ``torchrun`` everything here is a no-op
and the world has one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """The process's place in a ``torchrun`` world."""

    world_size: int  # number of processes (1 outside torchrun)
    rank: int  # this process's global rank
    local_rank: int  # this process's rank on its node (its GPU index)

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def env() -> DistEnv:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (set by ``torchrun``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world < 1 or not 0 <= rank < world:
        raise RuntimeError(f"inconsistent torchrun environment: WORLD_SIZE={world}, RANK={rank}")
    return DistEnv(world_size=world, rank=rank, local_rank=local)


def is_initialized() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on the process that writes files (rank 0, or the only process)."""
    return rank() == 0


def setup(device: torch.device) -> DistEnv:
    """Initialise the process group when running under ``torchrun`` (idempotent).

    The backend is ``nccl`` for CUDA devices and ``gloo`` otherwise; on CUDA the current
    device is set to ``device``. Returns the environment read.
    """
    info = env()
    if info.distributed and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
    return info


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` wrapped in DistributedDataParallel when a process group runs; else unchanged."""
    if not is_initialized():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP (or DataParallel) wrapper."""
    return model.module if hasattr(model, "module") else model


def barrier() -> None:
    """Wait for every process (no-op outside a process group)."""
    if is_initialized():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over every process, in place, and return it (identity when alone)."""
    if is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process."""
    if not is_initialized():
        return
    for buffer in unwrap(model).buffers():
        dist.broadcast(buffer.data, src=0)


def cleanup() -> None:
    """Destroy the process group if one was initialised."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
