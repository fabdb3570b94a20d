"""Files written atomically, JSON and tensors saved without pickle.

Every file the kit writes goes to a temporary file in the same folder first and is renamed
into place, so an interrupted run never leaves a half-written model or output behind. The
file gets the permissions of the user's umask, as ``open()`` would give it (``0644`` under
the usual ``022``), so a model trained by one user can be read by another (the Docker image's
non-root user, say); ``tempfile.mkstemp`` would leave it ``0600``.
Arrays are stored with ``safetensors`` (no code execution on load).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, uniquely named file beside ``path``, opened for writing with mode ``0o666``
    less the umask (the kernel applies the umask, so no thread ever changes it)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _to_jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def save_json(path: str | os.PathLike, obj) -> None:
    """Save an object as indented JSON, atomically (numpy values converted)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_to_jsonable, allow_nan=False) + "\n")


def load_json(path: str | os.PathLike):
    """Load a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Save named numpy arrays as a safetensors file, atomically."""
    from safetensors.numpy import save

    data = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write_bytes(path, save(data))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load named numpy arrays from a safetensors file (never unpickles)."""
    from safetensors.numpy import load_file

    return load_file(str(path))
