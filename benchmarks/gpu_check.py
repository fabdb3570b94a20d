#!/usr/bin/env python
"""The GPU path, measured: each deep engine trained a few epochs, records/s and images/s, and
the projected time of a full 43,101-record training.

    python -m benchmarks.gpu_check [--data DIR] [--sizes auto|default|tiny] [--json FILE]
    torchrun --standalone --nproc_per_node=N -m benchmarks.gpu_check ... --baseline FILE

``scripts/gpu_check.sh`` runs it once in one process, then under ``torchrun`` over every GPU
(two CPU processes without one). Sizes are the engines' defaults (``parallel_cnn`` on
12 x 10,000 samples at 500 Hz with 64 filters per branch, ``cwt_googlenet`` on 224 px
mosaics, batch 32 per process); ``--sizes tiny`` (``auto``: without CUDA) shrinks them so
that a CPU rehearses every step in seconds: its figures project nothing. Per engine:

- preprocessing: wall seconds per record to fill the engine's per-record cache from the
  records of DATA, as training does, in one process (the engines' default; ``--prep-workers``
  for more), after one record computed in memory (which pays for the imports); a second
  stage that finds the cache filled takes the figure from ``--baseline`` (the first stage's
  JSON);
- training: :func:`team_code.nn.training.fit` on the engine's network and loss, its default
  training options, over ``--items`` cached inputs per epoch (the records' inputs repeated:
  the cost does not depend on the values), read from the cache as training reads them, for
  ``--epochs`` epochs; the rate is the items of an epoch over the median time of the epochs
  after the first (which pays for warm-up). Under ``torchrun`` each process takes a shard of
  every epoch, and the rate counts all of them;
- inference: :func:`team_code.nn.training.predict` over the same items, per process (a
  training's validation is sharded over the processes, so its rate is this times the
  process count);
- mixed precision: on CUDA, bf16 where the device supports it, else fp16 with a gradient
  scaler; none on a CPU.
- GPU: peak memory allocated (``torch.cuda.max_memory_allocated``) beside the card's total,
  and utilisation read every 0.2 s during the training (``torch.cuda.utilization``, else
  ``nvidia-smi``); the inputs are read from the packed cache (:mod:`team_code.nn.packed`), a
  batch at a time, as training reads them. ``--device cpu`` rehearses every step on the CPU
  even where a GPU is.

Projection for each of ``--project``'s sizes (43,101: the 2020 Challenge's public training set;
88,000: the 2021 Challenge's), per
engine: preprocessing once (the cache is per record, shared by every fold), in one process and
spread over the machine's cores (``num_workers``/``preprocess_workers``; assumes it scales
with them), and one training
of the engine's default epochs (30; early stopping may end it sooner, so this is an upper
bound), each epoch over its training items (``parallel_cnn``: the 80 % of records outside the
validation split; ``cwt_googlenet``: its balanced draw of them, estimated by drawing from
DATA's labels repeated to that size) at the training rate and its validation records at the
inference rate. The default hybrid trains each deep member on ``n_folds`` folds of
(k-1)/k of the records and refits it on all (k trainings' worth) and predicts every record
once out of fold. Rules and beats are not included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

ENGINES = ("parallel_cnn", "cwt_googlenet")
#: Records in the 2020 Challenge's public training set.
CHALLENGE_RECORDS = 43_101
#: Records of the 2021 Challenge's training sets (about).
CHALLENGE_2021_RECORDS = 88_000
#: Seconds between two readings of the GPU's utilisation during a training.
UTILISATION_PERIOD_S = 0.2
#: Sizes of the CPU rehearsal (``--sizes tiny``): every step runs, in seconds.
TINY = {
    "parallel_cnn": {"fs_hz": 100.0, "length": 500, "filters": 4, "n_blocks": 3},
    "cwt_googlenet": {"image_size": 32, "n_scales": 12, "fs_hz": 100.0},
}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    here = Path(__file__).resolve().parents[1]
    data = Path(os.environ.get("ECG_KIT_DATA", here.parent / "shared" / "data")) / "challenge"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(data), help="records (default: %(default)s)")
    parser.add_argument("--records", type=int, default=0, help="use the first N (0: all)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    parser.add_argument(
        "--sizes",
        choices=("auto", "default", "tiny"),
        default="auto",
        help="the engines' default sizes, or tiny ones (auto: tiny without CUDA)",
    )
    parser.add_argument("--epochs", type=int, default=0, help="timed epochs (0: 3, tiny 2)")
    parser.add_argument("--items", type=int, default=0, help="inputs per epoch (0: 2048, tiny 16)")
    parser.add_argument("--prep-workers", type=int, default=0, help="preprocessing processes")
    parser.add_argument("--cache", default="", help="cache folder (default: a temporary one)")
    parser.add_argument("--baseline", default="", help="JSON of a first stage (preprocessing)")
    parser.add_argument(
        "--project",
        default=f"{CHALLENGE_RECORDS},{CHALLENGE_2021_RECORDS}",
        help="records to project the training time for, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help='"auto" (CUDA when present), "cpu" (the rehearsal, even with a GPU), "cuda[:N]"',
    )
    parser.add_argument("--json", default="", help="write the figures here (rank 0)")
    return parser


# --------------------------------------------------------------------------------------------
# Settings


def amp_setting(device, bf16_supported: bool) -> str:
    """``"bf16"`` on a CUDA device that supports it, ``"fp16"`` (with a gradient scaler) on
    one that does not, ``"none"`` on a CPU."""
    if device.type != "cuda":
        return "none"
    return "bf16" if bf16_supported else "fp16"


def engine(name: str, tiny: bool, prep_workers: int = 0, cache: str = "none", device="auto"):
    """The engine at its default config (tiny sizes when asked), set up for the 2020 task on
    twelve leads in a run with ``cache`` and ``prep_workers`` preprocessing processes."""
    from team_code.classifiers import registry
    from team_code.context import RunContext, Task

    cls = registry.get(name)
    model = cls(dataclasses.replace(cls.Config(), **(TINY[name] if tiny else {})))
    run = RunContext(device=device, cache_dir=cache, workers=prep_workers, progress=False)
    model._begin(Task(), run)
    return model


class Utilisation:
    """The GPU's utilisation (percent) read every ``UTILISATION_PERIOD_S`` in a thread while
    the block runs: ``torch.cuda.utilization`` (NVML), else ``nvidia-smi``; nothing on a CPU.
    :attr:`readings` holds the percentages read."""

    def __init__(self, device):
        self.device, self.readings = device, []
        self._stop = None

    def _read(self):
        import subprocess

        import torch

        try:
            return float(torch.cuda.utilization(self.device))
        except Exception:  # no NVML bindings (pynvml): ask nvidia-smi
            index = self.device.index or 0
            command = ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu"]
            try:
                out = subprocess.run(
                    [*command, "--format=csv,noheader,nounits"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                )
                return float(out.stdout.strip().splitlines()[0])
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return None

    def _loop(self):
        while not self._stop.wait(UTILISATION_PERIOD_S):
            value = self._read()
            if value is not None:
                self.readings.append(value)

    def __enter__(self):
        import threading

        if self.device.type == "cuda":
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._stop is not None:
            self._stop.set()
            self._thread.join()

    def summary(self) -> dict:
        """Mean and median utilisation (None without readings) and the number of readings."""
        if not self.readings:
            return {"gpu_util_mean": None, "gpu_util_median": None, "gpu_util_readings": 0}
        return {
            "gpu_util_mean": statistics.fmean(self.readings),
            "gpu_util_median": statistics.median(self.readings),
            "gpu_util_readings": len(self.readings),
        }


def train_config(model, amp: str, epochs: int):
    """The engine's training options for ``epochs`` epochs without early stopping, with the
    chosen mixed precision (every engine gets it)."""
    return dataclasses.replace(
        model.train_config(),
        epochs=epochs,
        patience=0,
        progress=False,
        num_workers=0,
        amp=amp != "none",
        amp_dtype=amp if amp != "none" else "bf16",
    )


# --------------------------------------------------------------------------------------------
# One engine


def train_items_per_epoch(name: str, config, truth, n_records: int) -> int:
    """Training items of one epoch of a training on ``n_records`` records: those outside the
    validation split, or (``cwt_googlenet``) its balanced draw of them, drawn from ``truth``
    (the local records' labels) repeated to that many records."""
    import numpy as np

    n_train = n_records - int(round(config.val_fraction * n_records))
    if name != "cwt_googlenet":
        return n_train
    from team_code.classifiers.cwt_googlenet import balanced_draw

    labels = truth[np.arange(n_train) % len(truth)]
    rng = np.random.default_rng(config.seed)
    return int(balanced_draw(labels, config.n_max, config.max_copies, rng).size)


def measure(name: str, model, records, truth, amp: str, epochs: int, items: int) -> dict:
    """Preprocessing, training and inference rates of one engine (see the module docstring)."""
    import numpy as np
    import torch

    from team_code.context import IN_MEMORY
    from team_code.nn import distributed
    from team_code.nn.cache import SignalDataset
    from team_code.nn.device import pick_device
    from team_code.nn.training import fit, predict, set_seed

    config = model.config
    device = pick_device(model.ctx.device)
    distributed.setup(device)
    run = model.ctx
    model.use(IN_MEMORY)
    model.cached_inputs(records.subset([0]), progress=False)  # imports, filter banks
    model.use(run)
    start = time.perf_counter()
    stored = model.cached_inputs(records, progress=False)
    inputs, kept = stored.items, stored.kept
    prep_seconds = time.perf_counter() - start
    if len(kept) == 0:
        raise SystemExit(f"gpu_check: {name} could not preprocess any record")
    rows = np.arange(items) % len(kept)
    targets = truth[kept][rows].astype(np.float32)
    set_seed(0)
    network, loss = model.build_network(), model.loss()
    options = train_config(model, amp, epochs)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_set = SignalDataset(inputs, targets, rows=rows)
    with Utilisation(device) as utilisation:
        result = fit(network, train_set, None, loss, options, log=None)
    seconds = [row["seconds"] for row in result.history]
    timed = seconds[1:] if len(seconds) > 1 else seconds
    start = time.perf_counter()
    predict(network, SignalDataset(inputs, rows=rows), options, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    infer_seconds = time.perf_counter() - start
    shape = tuple(np.asarray(inputs[0]).shape)
    return {
        "input_shape": list(shape),
        "batch_size": result.batch_size,  # chosen for the device where the engine leaves it
        "records_preprocessed": len(records),
        "prep_seconds": prep_seconds,
        "prep_s_per_record": prep_seconds / len(records),
        "epoch_seconds": seconds,
        "items_per_epoch": items,
        "train_items_per_s": items / statistics.median(timed),
        "infer_items_per_s": items / infer_seconds,
        "loss_first_last": [result.history[0]["train_loss"], result.history[-1]["train_loss"]],
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0,
        "gpu_total_bytes": (
            torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else 0
        ),
        **utilisation.summary(),
        "packed": type(inputs).__name__ == "PackedRows",
        "default_epochs": type(config)().epochs,
        "val_fraction": config.val_fraction,
    }


def project(figures: dict, train_items: int, n_records: int, world: int, n_folds: int) -> dict:
    """Projected seconds of preprocessing, one training and the hybrid's trainings of one
    engine on ``n_records`` records, from its measured rates (see the module docstring)."""
    val_items = int(round(figures["val_fraction"] * n_records))
    infer_rate = figures["infer_items_per_s"] * world  # validation is sharded over processes
    epoch = train_items / figures["train_items_per_s"] + val_items / infer_rate
    one = figures["default_epochs"] * epoch
    return {
        "records": n_records,
        "train_items_per_epoch": train_items,
        "val_items_per_epoch": val_items,
        "preprocess_s": figures["prep_s_per_record"] * n_records,
        "epoch_s": epoch,
        "training_s": one,
        # k folds on (k-1)/k of the records and a refit on all: k trainings' worth; then
        # every record predicted once out of fold.
        "hybrid_s": n_folds * one + n_records / figures["infer_items_per_s"],
    }


# --------------------------------------------------------------------------------------------
# Report


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _percent(value) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(report: dict) -> None:
    """The measured rates and the projection, as tables."""
    tiny = " (tiny sizes: a rehearsal; the projection means nothing)" if report["tiny"] else ""
    print(
        f"\n{report['device']} x {report['world_size']} process(es), amp {report['amp']}, "
        f"torch {report['torch']}, {report['records']} records of {report['data']}{tiny}"
    )
    print(
        f"{'engine':<14} {'input':<14} {'batch':>5} {'prep s/rec':>10} {'train /s':>9} "
        f"{'infer /s':>9} {'epoch s':>18} {'peak GPU':>9} {'util %':>6}"
    )
    for name, f in report["engines"].items():
        unit = "images" if name == "cwt_googlenet" else "records"
        epochs = ", ".join(f"{s:.2f}" for s in f["epoch_seconds"])
        print(
            f"{name:<14} {'x'.join(map(str, f['input_shape'])):<14} {f['batch_size']:>5} "
            f"{f['prep_s_per_record']:>10.4f} {f['train_items_per_s']:>9.1f} "
            f"{f['infer_items_per_s']:>9.1f} {epochs:>18} "
            f"{f['peak_gpu_bytes'] / 2**30:>7.1f} G {_percent(f['gpu_util_mean']):>6}   "
            f"({unit}/s; {f['items_per_epoch']} per epoch)"
        )
    for n in report["projections"]:
        print_projection(report, int(n))


def print_projection(report: dict, n: int) -> None:
    """The projected times of a training on ``n`` records."""
    cores = report["cores"]
    print(f"\nprojected for {n:,} records ({report['world_size']} process(es)):")
    print(
        f"{'engine':<14} {'epochs':>6} {'train items':>11} {'prep 1 core':>11} "
        f"{'prep ' + str(cores) + ' cores':>12} {'epoch':>9} {'one training':>12} "
        f"{'hybrid (' + str(report['n_folds']) + ' folds)':>17}"
    )
    keys = ("preprocess_s", "preprocess_cores_s", "training_s", "hybrid_s")
    total = dict.fromkeys(keys, 0.0)
    for name, p in report["projections"][str(n)].items():
        f = report["engines"][name]
        print(
            f"{name:<14} {f['default_epochs']:>6} {p['train_items_per_epoch']:>11,} "
            f"{_duration(p['preprocess_s']):>11} {_duration(p['preprocess_cores_s']):>12} "
            f"{_duration(p['epoch_s']):>9} {_duration(p['training_s']):>12} "
            f"{_duration(p['hybrid_s']):>17}"
        )
        for key in keys:
            total[key] += p[key]
    print(
        f"{'both':<14} {'':>6} {'':>11} {_duration(total['preprocess_s']):>11} "
        f"{_duration(total['preprocess_cores_s']):>12} {'':>9} "
        f"{_duration(total['training_s']):>12} {_duration(total['hybrid_s']):>17}"
    )
    print(
        "  preprocessing: once per record (measured in one process; over the cores assumes it "
        "scales); one training: the default epochs, no early stop; hybrid: deep members only"
    )


def main(args: argparse.Namespace) -> int:
    """Measure every engine, print the tables, write the JSON."""
    import tempfile

    import torch

    from team_code.classifiers.hybrid import HybridConfig
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import RecordSet, find_records
    from team_code.nn import distributed
    from team_code.nn.device import pick_device
    from team_code.threads import apply_threads, choose_threads, requested_threads

    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    apply_threads(choose_threads(local, requested_threads(None)))
    device = pick_device(args.device)
    tiny = args.sizes == "tiny" or (args.sizes == "auto" and device.type != "cuda")
    amp = amp_setting(device, device.type == "cuda" and torch.cuda.is_bf16_supported())
    epochs = args.epochs or (2 if tiny else 3)
    items = args.items or (16 if tiny else 2048)
    workers = args.prep_workers
    cores = len(os.sched_getaffinity(0))
    paths = find_records(args.data)
    if args.records:
        paths = paths[: args.records]
    records = RecordSet(paths)
    classes = scored_classes().codes
    truth = label_matrix(records.labels, classes)
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    cache = args.cache or tempfile.mkdtemp(prefix="gpu_check-")
    engines, projections = {}, {}
    sizes = [int(n) for n in str(args.project).split(",") if n.strip()]
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        model = engine(name, tiny, workers, cache, args.device)
        figures = measure(name, model, records, truth, amp, epochs, items)
        if baseline is not None and name in baseline["engines"]:
            for key in ("prep_seconds", "prep_s_per_record"):
                figures[key] = baseline["engines"][name][key]
            figures["prep_from"] = args.baseline
        engines[name] = figures
        for n in sizes:
            train_items = train_items_per_epoch(name, model.config, truth, n)
            one = project(figures, train_items, n, distributed.world_size(), HybridConfig().n_folds)
            one["preprocess_cores_s"] = one["preprocess_s"] / cores
            projections.setdefault(str(n), {})[name] = one
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "world_size": distributed.world_size(),
        "amp": amp,
        "tiny": tiny,
        "torch": torch.__version__,
        "data": str(args.data),
        "records": len(records),
        "prep_workers": workers,
        "cores": cores,
        "project": sizes[0],
        "n_folds": HybridConfig().n_folds,
        "engines": engines,
        "projection": projections[str(sizes[0])],
        "projections": projections,
    }
    if distributed.is_main():
        print_table(report)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    distributed.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
