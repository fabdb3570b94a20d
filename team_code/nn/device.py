"""Choosing the device to train or predict on, and its mixed-precision settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys

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
        if torch.cuda.is_available():
            name = "cuda"
        else:
            warn_unusable_gpu()
            name = "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            problem = unusable_gpu_problem()
            detail = f": {problem}" if problem else ""
            raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here{detail}")
        if name == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


#: The PyPI wheel of the pinned torch is a CUDA 13.0 build; its oldest supported driver.
DRIVER_NOTE = (
    "the PyPI torch 2.13.0 wheel is a CUDA 13.0 build and needs NVIDIA driver 580 or newer; "
    "with an older driver install a torch build for the driver's CUDA version"
)

_warned_unusable_gpu = False


def gpu_evidence() -> str | None:
    """What shows an NVIDIA GPU on this machine, whatever torch makes of it: ``/dev/nvidia0``,
    or ``nvidia-smi`` running (with the driver version it reports); ``None`` when neither."""
    found = []
    if os.path.exists("/dev/nvidia0"):
        found.append("/dev/nvidia0 exists")
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            done = subprocess.run(
                [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            gpu = done.stdout.strip().splitlines()[0]
            found.append(f"nvidia-smi reports {gpu} (name, driver)")
    return "; ".join(found) or None


def cuda_init_error() -> str | None:
    """The error torch gives when it initialises CUDA, or ``None`` when it initialises."""
    try:
        torch.cuda.init()
    except Exception as error:  # torch raises RuntimeError, AssertionError or others
        return f"{type(error).__name__}: {error}".strip()
    return None


def unusable_gpu_problem() -> str | None:
    """Why a GPU that the machine has cannot be used by torch, or ``None`` where the machine
    shows no GPU (or torch can use it)."""
    if torch.cuda.is_available():
        return None
    evidence = gpu_evidence()
    if evidence is None:
        return None
    built = torch.version.cuda
    build = (
        f"torch {torch.__version__} built for CUDA {built}"
        if built
        else (f"torch {torch.__version__} is a CPU-only build")
    )
    init = cuda_init_error()
    parts = [f"a GPU is present ({evidence}) but torch cannot use it", build]
    if init:
        parts.append(f"CUDA initialisation failed with {init}")
    parts.append(DRIVER_NOTE)
    return "; ".join(parts)


def warn_unusable_gpu() -> None:
    """Say on stderr, once per process, that a GPU is present but unusable, so that a run does
    not fall back to the CPU in silence (``--device cpu`` asks for the CPU and says nothing)."""
    global _warned_unusable_gpu
    if _warned_unusable_gpu:
        return
    problem = unusable_gpu_problem()
    if problem is None:
        return
    _warned_unusable_gpu = True
    print(
        f"WARNING: running on the CPU: {problem}. Pass --device cpu to choose the CPU "
        "and silence this.",
        file=sys.stderr,
        flush=True,
    )


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
