"""What identifies a training run, and how a training that did not learn fails.

- :func:`run_key`: the key of one training (or one part of it: a fold, a source's network):
  the records by the identity of their contents (each record's header text and signal file
  bytes; for records in memory, their samples, rate, leads and facts), their labels, the
  options and the files they name (weights, beat data), the task with its scoring weights and
  the kit's version. A checkpoint carries the key of the run that wrote
  it, and ``--resume`` continues only a checkpoint whose key matches
  (:func:`team_code.nn.training.fit`, the hybrid's parts): other records, relabelled headers,
  another learning rate or another version of the kit start afresh.
- :class:`TrainingDiverged`: raised by a training whose loss or weights became non-finite, or
  whose loss never came back to where it started (see :mod:`team_code.nn.training`); it names
  the engine, the part of the training, the epoch and the option to change.

Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from team_code.data.records import Record, RecordSet


class TrainingDiverged(RuntimeError):
    """A training that did not learn: non-finite loss or weights, or a loss that never came
    back to its start. ``engine`` trained ``part`` (a fold, a source's network, or ``"all
    records"``) and failed at ``epoch``; ``hint`` says which option to change."""

    def __init__(self, engine: str, part: str, epoch: int, reason: str, hint: str):
        self.engine, self.part, self.epoch, self.reason, self.hint = (
            engine,
            part,
            int(epoch),
            reason,
            hint,
        )
        super().__init__(f"{engine} ({part}) diverged at epoch {self.epoch}: {reason}; {hint}")

    def within(self, where: str) -> TrainingDiverged:
        """The same divergence, its part placed ``where`` (an ensemble's fold or refit): a
        network of all the records it was given there is named by ``where`` alone."""
        part = where if self.part == "all records" else f"{where}, {self.part}"
        return TrainingDiverged(self.engine, part, self.epoch, self.reason, self.hint)


#: Content digests of files already read by this process, by (path, size, mtime, inode,
#: algorithm): the digest is of the bytes, the stat only spares reading a file twice in one run.
_FILE_DIGESTS: dict[tuple, str] = {}

#: The digests :func:`file_digest` computes: blake2b for run keys, md5 for the signal groups of
#: :func:`team_code.classifiers.cv.signal_digests` (whose values order the grouped folds).
_DIGESTS = {
    "blake2b": lambda: hashlib.blake2b(digest_size=16),
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}


def file_digest(path: Path, algorithm: str = "blake2b") -> str:
    """The digest of a file's bytes, read once per process while the file is unchanged;
    ``OSError`` where it cannot be read."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, algorithm)
    if memo not in _FILE_DIGESTS:
        digest = _DIGESTS[algorithm]()
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        _FILE_DIGESTS[memo] = digest.hexdigest()
    return _FILE_DIGESTS[memo]


def _memory_digest(record: Record) -> str:
    digest = hashlib.blake2b(digest_size=16)
    facts = [record.name, float(record.fs), list(record.leads), record.age, record.sex]
    digest.update(json.dumps(facts, default=str).encode())
    digest.update(np.ascontiguousarray(record.signal, dtype=np.float32).tobytes())
    return digest.hexdigest()


def record_digests(records: Sequence[Record]) -> list[str]:
    """One digest per record of what it holds: its header text and signal file bytes (a lazy
    :class:`RecordSet`), or its samples, rate, leads and facts (records in memory). Names and
    modification times play no part; a record whose files cannot be read raises naming it."""
    if not isinstance(records, RecordSet):
        return [_memory_digest(r) for r in records]
    digests = []
    for header in records.headers:
        try:
            files = (header.path, header.path.parent / header.signal_file)
            digests.append(":".join(file_digest(f) for f in files))
        except OSError as error:
            raise ValueError(f"record {header.name}: cannot be read ({error})") from None
    return digests


def _labels(records: Sequence[Record]) -> list[list[str]]:
    from team_code.context import record_labels

    return [sorted(labels) for labels in record_labels(records)]


#: Environment variables that name a file an option stands for (the modules that read them
#: import torch; tests/test_resume.py checks these names against theirs).
GOOGLENET_WEIGHTS_ENV = "ECG_KIT_GOOGLENET_WEIGHTS"
DELINEATOR_WEIGHTS_ENV = "ECG_KIT_DELINEATOR_WEIGHTS"
DELINEATOR_WEIGHTS = Path(__file__).parent / "nn" / "delineator.safetensors"


def _folder_digest(folder: Path) -> str:
    """A digest of every file under ``folder``: relative names and contents."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}:{file_digest(path)};".encode())
    return digest.hexdigest()


def input_files(options) -> dict[str, str]:
    """Digests of the files and folders that ``options`` (nested dicts, as a hybrid's member
    options are) make a training read besides its records, by the option's dotted name: an
    option whose value names an existing file or folder (``beat_data``, ``pretrained_weights``),
    the ImageNet weights ``$ECG_KIT_GOOGLENET_WEIGHTS`` names where ``pretrained_weights`` is
    empty, and the learned delineator's weights where ``delineator`` is ``cnn``. A file that
    is named but missing counts by its absence."""
    found: dict[str, str] = {}

    def add(label: str, path: Path) -> None:
        path = path.expanduser()
        if path.is_file():
            found[label] = file_digest(path)
        elif path.is_dir():
            found[label] = _folder_digest(path)
        else:
            found[label] = f"missing:{path}"

    def walk(label: str, key: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{label}.{k}" if label else str(k), str(k), v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{label}[{i}]", key, v)
        elif isinstance(value, str):
            if key == "pretrained_weights" and not value and os.environ.get(GOOGLENET_WEIGHTS_ENV):
                add(f"{label} (${GOOGLENET_WEIGHTS_ENV})", Path(os.environ[GOOGLENET_WEIGHTS_ENV]))
            elif key == "delineator" and value == "cnn":
                named = os.environ.get(DELINEATOR_WEIGHTS_ENV, "")
                add(f"{label} weights", Path(named) if named else DELINEATOR_WEIGHTS)
            elif ("/" in value or Path(value).suffix) and Path(value).expanduser().exists():
                add(label, Path(value))

    walk("", "", options)
    return found


def run_key(
    name: str,
    config,
    task,
    records: Sequence[Record],
    held_out: Sequence[Record] = (),
) -> str:
    """The key of training ``name`` with ``config`` (a dataclass) for ``task`` on ``records``
    (and, for a fold, scoring ``held_out``): a SHA-256 over the records' names, contents and
    labels on each side, the options and the files they make the training read
    (:func:`input_files`), the task, its classes and scoring weights (a custom table edited in
    place changes the key) and the kit's version."""
    from team_code import __version__
    from team_code.context import record_names

    sides = [
        [record_names(side), record_digests(side), _labels(side)] for side in (records, held_out)
    ]
    options = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    weights = np.asarray(task.scored.weights, dtype=float).round(12).tolist()
    inputs = input_files(options)
    text = json.dumps(
        [name, options, inputs, task.to_json(), list(task.classes), weights, sides, __version__],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["TrainingDiverged", "file_digest", "input_files", "record_digests", "run_key"]
