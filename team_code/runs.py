"""What identifies a training run, and how a training that did not learn fails.

- :func:`run_key`: the key of one training (or one part of it: a fold, a source's network):
  the records by the identity of their contents (each record's header text and signal file
  bytes; for records in memory, their samples, rate, leads and facts), their labels, the
  options, the task and the kit's version. A checkpoint carries the key of the run that wrote
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


#: Content digests of record files already read by this process, by (path, size, mtime, inode):
#: the digest is of the bytes, the stat only spares reading a file twice in one run.
_FILE_DIGESTS: dict[tuple, str] = {}


def _file_digest(path: Path) -> str:
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if memo not in _FILE_DIGESTS:
        digest = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as file:
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
            digests.append(":".join(_file_digest(f) for f in files))
        except OSError as error:
            raise ValueError(f"record {header.name}: cannot be read ({error})") from None
    return digests


def _labels(records: Sequence[Record]) -> list[list[str]]:
    from team_code.context import record_labels

    return [sorted(labels) for labels in record_labels(records)]


def run_key(
    name: str,
    config,
    task,
    records: Sequence[Record],
    held_out: Sequence[Record] = (),
) -> str:
    """The key of training ``name`` with ``config`` (a dataclass) for ``task`` on ``records``
    (and, for a fold, scoring ``held_out``): a SHA-256 over the records' names, contents and
    labels on each side, the options, the task, its classes and the kit's version."""
    from team_code import __version__
    from team_code.context import record_names

    sides = [
        [record_names(side), record_digests(side), _labels(side)] for side in (records, held_out)
    ]
    options = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    text = json.dumps(
        [name, options, task.to_json(), list(task.classes), sides, __version__],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


__all__ = ["TrainingDiverged", "record_digests", "run_key"]
