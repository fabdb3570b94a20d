"""How many compute threads each process may use: never more, across processes, than cores.

On a shared 2-core machine two OpenMP threads per process fight any other busy process: the
thread that loses its core holds up the other at every barrier, and GoogLeNet trained at 1.5
images/s with two threads against 108-112 with one. So the thread count is chosen from

- the cores this process may run on (``os.sched_getaffinity``: a container's or ``taskset``'s
  limit, not the machine's count),
- the number of processes that share them (``run_model.py --workers``, ``torchrun``'s local
  world size),
- the cores other work keeps busy (the one-minute load average, read before this process
  starts computing),

and an explicit ``--threads N`` (or ``OMP_NUM_THREADS``) overrides the choice. OpenMP threads
are also told to sleep, not spin, while they wait (``OMP_WAIT_POLICY=PASSIVE``, unless set), so
that a thread that lost its core does not burn the other one.

That choice is for classifying records. A training's threads never follow the load
(:func:`training_threads`): the number of threads splits a network's sums differently and so
changes its weights, and the same records, options and seed must give the same model on a busy
machine as on an idle one. A training uses the cores this process may run on, shared among
``torchrun``'s local processes, unless ``--threads`` (or ``OMP_NUM_THREADS``) says otherwise,
and the model's manifest records the number.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping

#: Environment variables that set the compute threads of OpenMP and the BLAS libraries.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores() -> int:
    """Cores kept busy by other work: the one-minute load average, rounded down."""
    try:
        return int(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0


def choose_threads(
    processes: int = 1,
    requested: int | None = None,
    cores: int | None = None,
    busy: int | None = None,
) -> int:
    """Threads per process: ``requested`` when given (>= 1), else the free cores shared
    evenly among ``processes`` (at least 1)."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be >= 1, not {requested}")
        return requested
    cores = available_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    free = max(1, cores - max(0, busy))
    return max(1, free // max(1, processes))


def training_threads(
    processes: int = 1, requested: int | None = None, cores: int | None = None
) -> int:
    """Threads per training process: ``requested`` when given (>= 1), else the cores this
    process may use shared evenly among ``processes`` (at least 1). Never the load: see the
    module's docstring."""
    if requested is not None:
        return choose_threads(processes, requested)
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, processes))


def requested_threads(option: int | None) -> int | None:
    """The user's choice: ``option`` (``--threads``), else ``$OMP_NUM_THREADS``, else None."""
    if option is not None:
        return option
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def apply_threads(threads: int) -> None:
    """Use ``threads`` compute threads in this process (torch, OpenMP, BLAS).

    Sets the environment for libraries not loaded yet (and for child processes) and, when
    torch is already imported, its intra-op thread count.
    """
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Environment variables set to ``values`` for the duration of a block, then restored
    (removed where they were not set)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def using_threads(threads: int) -> Iterator[None]:
    """:func:`apply_threads` for the duration of a block; the environment and torch's thread
    count (when torch was imported before) are restored after it."""
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    wait_policy = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    with environment({**dict.fromkeys(THREAD_VARIABLES, str(threads)), **wait_policy}):
        apply_threads(threads)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(torch_threads)


def worker_processes(workers: int = 0) -> int:
    """Processes for a preprocessing or measurement pass: ``workers`` when positive, else the
    compute threads this process may use (:func:`choose_threads`: ``$OMP_NUM_THREADS``, else
    the free cores)."""
    return workers if workers > 0 else choose_threads(1, requested_threads(None))
