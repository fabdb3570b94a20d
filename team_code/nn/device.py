"""Choosing the device to train or predict on, and its mixed-precision settings."""

from __future__ import annotations

import contextlib
import os

import torch

#: Names accepted for mixed-precision dtypes.
AMP_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def pick_device(name: str = "auto") -> torch.device:
    """The device named by ``name``: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``.

    Under ``torchrun`` (``LOCAL_RANK`` set), ``"auto"`` and ``"cuda"`` pick the local rank's GPU.
    Asking for CUDA where there is none raises ``RuntimeError``.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
        if name == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def amp_dtype(name: str) -> torch.dtype:
    """The torch dtype of a mixed-precision name: ``"bf16"``, ``"fp16"`` or ``"auto"`` (bf16
    where the CUDA device supports it, else fp16, which training pairs with a GradScaler:
    V100 and T4 have no bf16)."""
    key = name.strip().lower()
    if key == "auto":
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    try:
        return AMP_DTYPES[key]
    except KeyError:
        raise ValueError(f"unknown amp_dtype {name!r}; use 'auto', 'bf16' or 'fp16'") from None


def amp_enabled(device: torch.device, amp: bool) -> bool:
    """Mixed precision is used on CUDA only, and only when asked for."""
    return bool(amp) and device.type == "cuda"


def autocast(device: torch.device, amp: bool, dtype: str = "bf16"):
    """A ``torch.autocast`` context on CUDA when ``amp`` is on; a no-op context otherwise."""
    if not amp_enabled(device, amp):
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=amp_dtype(dtype))
