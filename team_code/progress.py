"""Progress of long work on stderr: a live bar on a terminal, a few plain lines in a log.

Every epoch and every preprocessing pass goes through :func:`progress`. On a terminal it is a
``tqdm`` bar that vanishes when done; when stderr is not a terminal (a log file, a CI job, a
pipe) a bar would write hundreds of carriage-return updates, so instead a pass writes one line
when it has run for ``every_s`` seconds and every ``every_s`` seconds after that, and one line
when it ends (only if it took that long: short passes stay silent). Epochs already write one
summary line each (:func:`team_code.nn.training.fit`), so a log keeps one line per epoch.
``enabled=False`` (``train_model.py --no-progress``) silences both forms.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Seconds between the plain progress lines written when stderr is not a terminal.
LINE_EVERY_S = 30.0


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def _lines(
    iterable: Iterable[T], total: int | None, desc: str, unit: str, every_s: float, stream
) -> Iterator[T]:
    start = last = time.perf_counter()
    done = 0
    of = f"/{total}" if total is not None else ""
    for item in iterable:
        yield item
        done += 1
        now = time.perf_counter()
        if now - last >= every_s:
            last = now
            rate = done / max(now - start, 1e-9)
            print(f"{desc}: {done}{of} {unit} ({rate:.1f} {unit}/s)", file=stream, flush=True)
    elapsed = time.perf_counter() - start
    if elapsed >= every_s:
        print(f"{desc}: {done}{of} {unit} in {elapsed:.0f} s", file=stream, flush=True)


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    enabled: bool = True,
    every_s: float = LINE_EVERY_S,
    stream=None,
) -> Iterable[T]:
    """``iterable`` with progress shown on ``stream`` (stderr): a bar on a terminal, plain lines
    every ``every_s`` seconds elsewhere, nothing when ``enabled`` is false."""
    stream = sys.stderr if stream is None else stream
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not enabled:
        return iterable
    if _is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, leave=False)
    return _lines(iterable, total, desc, unit, every_s, stream)
