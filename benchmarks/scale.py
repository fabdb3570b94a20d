#!/usr/bin/env python
"""Training at scale: time per stage, peak memory and disk of the default hybrid vs records.

    python -m benchmarks.scale --records N [--folds 5] [--work DIR] [--json FILE]
    python -m benchmarks.scale --project A.json B.json     # figures vs N, projected

Generates N synthetic 12-lead records (10 s at 500 Hz, :mod:`team_code.data.synth`), trains
the default classifier (the hybrid: rules, parallel_cnn, cwt_googlenet; ``--folds`` folds and a
refit) through :func:`team_code.harness.train` with tiny networks and one epoch, so that the
data path runs at full size while the compute stays small:

- parallel_cnn: the default input (12 leads x 10,000 samples at 500 Hz, 240,128 bytes per
  cache entry) into 2 filters per branch;
- cwt_googlenet: 32 px mosaics (the scalograms at their default resolution, then
  area-averaged), GoogLeNet from scratch on a balanced draw of at most 100 per class;
- rules: every measurement, in one process (``workers=1``).

Everything runs in this process with one compute thread. It prints the wall time of each
stage (the member lines include their cache lines), the peak resident memory of the training
(``VmHWM``, reset after the records are generated), and the bytes of the model folder, its
work folder and the per-record cache (with the ratio of the cache to records x the first
record's entries; the rules' JSON entries vary a little in size from record to record).
``--json FILE`` writes ``{"records", "cache_bytes", "model_bytes", "peak_rss_bytes",
"seconds": {...}, ...}``. ``--project`` reads two such files and fits each
figure linearly in N through the two points (a + b N), printing the projection to 43,101 and
88,000 records; the cache is also projected at the default image size (224 px).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

CHALLENGE_2020 = 43_101
CHALLENGE_2021 = 88_000
#: One cwt_googlenet entry at the default 224 px: float16 pixels (a row of the packed cache).
CWT_ENTRY_AT_224 = 224 * 224 * 2

#: Tiny networks, one epoch, full-size data path (see the module docstring).
TINY_OPTIONS = {
    "parallel_cnn": {
        "filters": "2",
        "epochs": "1",
        "patience": "0",
    },
    "cwt_googlenet": {
        "image_size": "32",
        "epochs": "1",
        "pretrained_weights": "none",
        "n_max": "100",
        "max_copies": "1",
        "patience": "0",
    },
}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, help="synthetic records to generate and train on")
    parser.add_argument("--folds", type=int, default=5, help="hybrid folds (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="record length (10 s)")
    parser.add_argument("--work", type=Path, help="folder for data and model (default: a temp)")
    parser.add_argument("--json", type=Path, help="write the figures to this JSON file")
    parser.add_argument("--project", nargs=2, type=Path, metavar="JSON", help="two runs' JSON")
    return parser


# --------------------------------------------------------------------------------------------
# Measuring


def _status_bytes(field: str) -> int | None:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes, where Linux has it."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def _reset_peak() -> bool:
    """Reset this process's peak resident memory (``VmHWM``); False where Linux cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_rss() -> int:
    peak = _status_bytes("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Stages:
    """Wall time of named stages, gathered by wrapping functions (calls nest: a member's fit
    includes the cache it fills)."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.cpu_seconds = collections.defaultdict(float)
        self.calls = collections.Counter()
        self.peak = {}  # stage -> the process's peak resident memory when it last ended
        self._undo = []

    def wrap(self, owner, attribute: str, stage) -> None:
        """Time every call of ``owner.attribute``; ``stage(*args)`` names the stage."""
        original = getattr(owner, attribute)
        seconds, cpu, calls, peak = self.seconds, self.cpu_seconds, self.calls, self.peak

        def timed(*args, **kwargs):
            name = stage(*args) if callable(stage) else stage
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start
                cpu[name] += time.process_time() - cpu_start
                calls[name] += 1
                peak[name] = _peak_rss()

        own = attribute in vars(owner)  # else inherited: restored by deleting the wrapper
        setattr(owner, attribute, timed)
        self._undo.append((owner, attribute, original if own else None))

    def restore(self) -> None:
        for owner, attribute, original in reversed(self._undo):
            if original is None:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)
        self._undo.clear()


def _instrument(stages: Stages, members: list[str]) -> None:
    from team_code import training
    from team_code.classifiers import hybrid, measurements, registry
    from team_code.nn import cache

    def kind(records, compute, settings, *args, **kwargs):
        return f"cache: {settings.get('kind')}"

    stages.wrap(training, "scan_records", "read headers")
    stages.wrap(hybrid, "signal_digests", "fold groups (signal digests)")
    stages.wrap(cache, "per_record", kind)
    stages.wrap(measurements, "per_record", kind)
    for name in members:
        cls = registry.get(name)
        stages.wrap(cls, "fit", f"{name}: fit (all folds + refit)")
        stages.wrap(cls, "predict_proba", f"{name}: held-out scores")
    stages.wrap(hybrid.HybridClassifier, "_choose_and_validate", "hybrid: fusion")
    stages.wrap(hybrid.HybridClassifier, "save", "save")


def _cache_kinds(cache: Path, first_record: str) -> dict:
    """Per cache folder: entries (files, and rows of its pack), bytes and the size of the first
    record's entry (its file, or its row of the pack)."""
    from team_code.nn.packed import INDEX_FILE, packed_rows_bytes, record_of_entry
    from team_code.record_cache import folder_bytes

    kinds = {}
    for folder in sorted(p for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []:
        files = [p for p in folder.iterdir() if p.suffix in (".npy", ".json")]
        files = [p for p in files if p.name not in ("settings.json", "failures.json", INDEX_FILE)]
        rows = packed_rows_bytes(folder)  # entry -> bytes of its row
        first = [p.stat().st_size for p in files if p.name.startswith(first_record + "-")]
        first += [n for e, n in rows.items() if record_of_entry(e) == first_record]
        kinds[folder.name] = {
            "entries": len(files) + len(rows),
            "bytes": folder_bytes(folder),
            "first_record_bytes": first[0] if first else 0,
        }
    return kinds


def run(n_records: int, folds: int, seconds: float, work: Path) -> dict:
    """Generate, train, measure; the figures as a dict."""
    import torch

    from team_code import harness
    from team_code.data.synth import generate_dataset
    from team_code.record_cache import CACHE_ENV, folder_bytes

    torch.set_num_threads(1)
    os.environ.pop(CACHE_ENV, None)  # the cache goes to MODEL/.cache, measured below
    baseline = _status_bytes("VmRSS")
    figures: dict = {"records": n_records, "folds": folds, "threads": torch.get_num_threads()}
    data, model = work / "data", work / "model"
    start, cpu_start = time.perf_counter(), time.process_time()
    paths = generate_dataset(data, n_records, seed=0, duration_s=seconds)
    generation = time.perf_counter() - start
    generation_cpu = time.process_time() - cpu_start

    members = ["rules", "parallel_cnn", "cwt_googlenet"]
    options = {
        **{k: dict(v) for k, v in TINY_OPTIONS.items()},
        "hybrid": {"n_folds": str(folds), "members": ",".join(members)},
    }
    stages = Stages()
    _instrument(stages, members)
    messages: list[str] = []
    reset = _reset_peak()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        harness.train(
            data,
            model,
            ["hybrid"],
            options,
            log=messages.append,
            progress=False,
            cache="keep",
            preset="paper",  # the default input sizes, on the CPU
            device="cpu",
            workers=1,
        )
    finally:
        stages.restore()
    training = time.perf_counter() - start
    training_cpu = time.process_time() - cpu_start

    cache_dir = model / ".cache"
    kinds = _cache_kinds(cache_dir, paths[0].stem)
    one_record = sum(k["first_record_bytes"] for k in kinds.values())
    cache_bytes = folder_bytes(cache_dir)
    figures.update(
        {
            "cache_bytes": cache_bytes,
            "cache_kinds": kinds,
            "one_record_cache_bytes": one_record,
            "cache_ratio": cache_bytes / (n_records * one_record) if one_record else None,
            "model_bytes": folder_bytes(model) - cache_bytes - folder_bytes(model / ".work"),
            "work_bytes": folder_bytes(model / ".work"),
            "data_bytes": folder_bytes(data),
            "peak_rss_bytes": _peak_rss(),
            "peak_rss_is_training_only": reset,
            "baseline_rss_bytes": baseline,
            "seconds": {
                "generate records": round(generation, 2),
                **{k: round(v, 2) for k, v in sorted(stages.seconds.items())},
                "training (total)": round(training, 2),
            },
            "cpu_seconds": {
                "generate records": round(generation_cpu, 2),
                **{k: round(v, 2) for k, v in sorted(stages.cpu_seconds.items())},
                "training (total)": round(training_cpu, 2),
            },
            "load_average": os.getloadavg()[0],
            "calls": dict(stages.calls),
            "peak_rss_after_bytes": dict(stages.peak),
            "options": options,
        }
    )
    return figures


# --------------------------------------------------------------------------------------------
# Printing


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def print_run(f: dict) -> None:
    """The figures of one run as a table."""
    print(f"records {f['records']}, hybrid folds {f['folds']}, {f['threads']} thread(s)")
    print(f"{'stage':44s} {'wall s':>9s} {'CPU s':>9s}")
    for stage, value in f["seconds"].items():
        print(f"{stage:44s} {value:9.1f} {f['cpu_seconds'][stage]:9.1f}")
    print(f"(one-minute load average at the end: {f['load_average']:.1f})")
    print(f"{'peak resident memory (training)':44s} {_size(f['peak_rss_bytes']):>12s}")
    print(f"{'resident memory after imports':44s} {_size(f['baseline_rss_bytes']):>12s}")
    print(f"{'model folder (less cache and work)':44s} {_size(f['model_bytes']):>12s}")
    print(f"{'work folder (checkpoints, fold outputs)':44s} {_size(f['work_bytes']):>12s}")
    print(f"{'generated records':44s} {_size(f['data_bytes']):>12s}")
    print(f"{'cache':44s} {_size(f['cache_bytes']):>12s}")
    for name, kind in f["cache_kinds"].items():
        line = f"  {name}: {kind['entries']} entries, one {kind['first_record_bytes']} B"
        print(f"{line:44s} {_size(kind['bytes']):>12s}")
    ratio = f["cache_ratio"]
    print(f"cache / (records x one record's {f['one_record_cache_bytes']} B): {ratio:.3f}")


def _line(a: dict, b: dict, get) -> tuple[float, float]:
    """(intercept, slope) of the line through the two runs' figures."""
    na, nb = a["records"], b["records"]
    ya, yb = get(a), get(b)
    slope = (yb - ya) / (nb - na)
    return ya - slope * na, slope


def _cache_at_default_size(f: dict) -> float:
    """The run's cache with cwt_googlenet entries at 224 px instead of the run's size."""
    total = f["cache_bytes"]
    for name, kind in f["cache_kinds"].items():
        if name.startswith("cwt_googlenet") and kind["first_record_bytes"]:
            total += kind["entries"] * (CWT_ENTRY_AT_224 - kind["first_record_bytes"])
    return total


def project(a: dict, b: dict) -> dict:
    """Each figure of two runs, its growth per record, and its value at 43,101 and 88,000."""
    if a["records"] == b["records"]:
        raise ValueError("the two runs must have different record counts")
    a, b = sorted((a, b), key=lambda f: f["records"])
    figures = {
        "cache bytes": lambda f: f["cache_bytes"],
        "cache bytes at 224 px": _cache_at_default_size,
        "model bytes": lambda f: f["model_bytes"],
        "work bytes": lambda f: f["work_bytes"],
        "peak RSS bytes": lambda f: f["peak_rss_bytes"],
        **{
            f"CPU s: {stage}": (lambda f, s=stage: f["cpu_seconds"].get(s, 0.0))
            for stage in b["cpu_seconds"]
        },
        **{
            f"wall s: {stage}": (lambda f, s=stage: f["seconds"].get(s, 0.0))
            for stage in b["seconds"]
        },
    }
    rows = {}
    for name, get in figures.items():
        intercept, slope = _line(a, b, get)
        rows[name] = {
            str(a["records"]): get(a),
            str(b["records"]): get(b),
            "per_record": slope,
            str(CHALLENGE_2020): intercept + slope * CHALLENGE_2020,
            str(CHALLENGE_2021): intercept + slope * CHALLENGE_2021,
        }
    return rows


def print_projection(rows: dict, a: int, b: int) -> None:
    """The projection table (bytes in GB/MB, seconds as hours where large)."""
    a, b = sorted((a, b))
    head = ["figure", f"N={a}", f"N={b}", "per record"]
    head += [f"N={CHALLENGE_2020}", f"N={CHALLENGE_2021}"]
    print(f"{head[0]:40s} " + " ".join(f"{h:>12s}" for h in head[1:]))
    for name, row in rows.items():
        values = [row[str(a)], row[str(b)], row["per_record"]]
        values += [row[str(CHALLENGE_2020)], row[str(CHALLENGE_2021)]]
        if "bytes" in name:
            cells = [_size(v) for v in values]
        else:
            cells = [f"{v:.1f} s" if abs(v) < 3600 else f"{v / 3600:.2f} h" for v in values]
            cells[2] = f"{values[2] * 1000:.1f} ms"
        print(f"{name:40s} " + " ".join(f"{c:>12s}" for c in cells))
    print("(linear in N through the two runs: a + b N; b is 'per record'; wall seconds also")
    print(" depend on what else ran; CPU seconds are this process's own)")


def main(args: argparse.Namespace) -> int:
    """Run one size, or project from two runs' JSON files."""
    if args.project:
        runs = [json.loads(p.read_text()) for p in args.project]
        rows = project(*runs)
        print_projection(rows, runs[0]["records"], runs[1]["records"])
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    if not args.records or args.records < args.folds:
        print("error: --records N (at least --folds) is required", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        work = args.work
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ecg-scale-")))
        figures = run(args.records, args.folds, args.seconds, work)
    print_run(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
