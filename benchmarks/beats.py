#!/usr/bin/env python
"""Beat classification on MIT-BIH (AAMI classes) and the transfer to myocardial infarction.

    python -m benchmarks.beats [--data ../shared/data/mitdb] \
        [--mi-data ../shared/data/challenge ../shared/data/ptbdb] \
        [--models kachuee2018,skip_cnn,resnet_tcn] [--epochs 5] [--max-beats 4000] \
        [--batch-size 64] [--tcn-epochs 3] [--tcn-max-beats 1000] [--tcn-batch-size 32] \
        [--mi-epochs 10] [--folds 5] [--threads 1]

Two protocols for each network, labelled in the output:

- **intra-patient**: a random, class-stratified 80/20 split of all beats, the protocol of the
  papers (Kachuee et al. 2018: 93.4 % accuracy; skip-connection CNN: 97.2 %; ResNet-TCN:
  98.8 %). Beats of one patient sit on both sides, so this measures recognising a patient's
  own beats: optimistic.
- **inter-patient**: de Chazal et al. (2004), train on the DS1 records and test on the DS2
  records, paced records (102, 104, 107, 217) excluded. The figure to trust.

Then the MI transfer: the intra-patient Kachuee network gets all but its last two layers
frozen and learns MI versus healthy from lead II beats (R peaks from ``qrs.detect``),
cross-validated with folds grouped by patient (PTB) or record so one patient's beats never sit
on both sides; beat- and record-level results.

Training is bounded for a 2-core CPU (``--epochs``, ``--max-beats``: hybrid resampling to
balanced classes, capped); the papers trained far longer on all 48 records. The same script
runs unchanged on the whole database: ``--data DIR`` after ``wfdb.dl_database('mitdb', DIR)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from team_code.beats import extract, mitdb, models, ptb
from team_code.beats import train as beat_train

ROOT = Path(__file__).resolve().parent.parent

PAPER_ACCURACY = {"kachuee2018": 93.4, "skip_cnn": 97.2, "resnet_tcn": 98.8}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    data = ROOT.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data / "mitdb", help="MIT-BIH folder")
    parser.add_argument(
        "--mi-data",
        type=Path,
        nargs="*",
        default=[data / "challenge", data / "ptbdb"],
        help="Challenge-format and/or PTB folders for the MI transfer (none: skip it)",
    )
    parser.add_argument("--models", default="kachuee2018,skip_cnn,resnet_tcn")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (kachuee2018, skip_cnn)")
    parser.add_argument("--batch-size", type=int, default=64, help="(kachuee2018, skip_cnn)")
    parser.add_argument("--max-beats", type=int, default=4000, help="training beats per model")
    parser.add_argument("--tcn-epochs", type=int, default=3, help="epochs of resnet_tcn")
    parser.add_argument("--tcn-max-beats", type=int, default=1000, help="beats for resnet_tcn")
    parser.add_argument("--tcn-batch-size", type=int, default=32, help="batch of resnet_tcn")
    parser.add_argument(
        "--kachuee-r",
        choices=("local_maxima", "annotations"),
        default="local_maxima",
        help="R peaks of the 187-sample beats: the paper's candidates or the annotations",
    )
    parser.add_argument("--mi-epochs", type=int, default=10)
    parser.add_argument("--mi-beats-per-record", type=int, default=20)
    parser.add_argument("--folds", type=int, default=5, help="grouped folds of the MI transfer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    return parser


def _extraction_config(method: str, args):
    config = extract.config_for(method)
    if method == "kachuee2018":
        config = dataclasses.replace(config, r_source=args.kachuee_r)
    return config


def _counts(beats: extract.BeatSet) -> str:
    return ", ".join(f"{c} {n}" for c, n in beats.counts().items())


def run_protocol(name, beats, train_idx, test_idx, args):
    """Train one network on ``train_idx`` beats and print its metrics on ``test_idx``."""
    is_tcn = name == "resnet_tcn"
    config = beat_train.BeatTrainConfig(
        epochs=args.tcn_epochs if is_tcn else args.epochs,
        max_beats=args.tcn_max_beats if is_tcn else args.max_beats,
        batch_size=args.tcn_batch_size if is_tcn else args.batch_size,
        augment=is_tcn,
        seed=args.seed,
        device=args.device,
    )
    model = models.build(name, n_classes=5, input_length=beats.x.shape[1])
    train_set = beats.subset(train_idx)
    start = time.perf_counter()
    result = beat_train.train_beat_model(model, train_set, config, 5, log=None)
    seconds = time.perf_counter() - start
    probs = beat_train.predict_proba(model, beats.x[test_idx], args.device)
    metrics = beat_train.beat_metrics(beats.y[test_idx], probs.argmax(axis=1))
    losses = [f"{h['train_loss']:.3f}" for h in result.history]
    print(
        f"  train beats {len(train_set)} ({_counts(train_set)}); resampled to "
        f"{min(config.max_beats or 10**9, len(train_set))} balanced, {config.epochs} epochs, "
        f"train loss {' -> '.join(losses)}, {seconds:.0f} s"
    )
    print(beat_train.format_metrics(metrics, indent="  "))
    return model, metrics


def main(args) -> int:
    """Run both protocols for each network, then the MI transfer; print the tables."""
    import torch

    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        if n not in models.MODELS:
            raise SystemExit(f"unknown model {n!r}; known: {', '.join(models.MODELS)}")
    t0 = time.perf_counter()
    records = mitdb.read_database(args.data)
    present = [r.name for r in records]
    ds1 = [n for n in present if n in mitdb.DS1]
    ds2 = [n for n in present if n in mitdb.DS2]
    print(f"MIT-BIH: {args.data} - {len(present)} non-paced records: {', '.join(present)}")
    print(f"  DS1 present: {', '.join(ds1) or 'none'} ({len(ds1)} of {len(mitdb.DS1)})")
    print(f"  DS2 present: {', '.join(ds2) or 'none'} ({len(ds2)} of {len(mitdb.DS2)})")
    partial = len(ds1) < len(mitdb.DS1) or len(ds2) < len(mitdb.DS2)
    if partial:
        print(
            "  CAVEAT: a partial database. Inter-patient figures rest on "
            f"{len(ds1)} training and {len(ds2)} test patients and classes with a handful of "
            "beats (see n); they are not comparable with published DS1->DS2 results. Run with "
            "--data on the full 48-record database for those."
        )
    annotated = {c: 0 for c in mitdb.AAMI_CLASSES}
    for r in records:
        for c, n in r.counts().items():
            annotated[c] += n
    print("  annotated AAMI beats: " + ", ".join(f"{c} {n}" for c, n in annotated.items()))

    extracted: dict[str, extract.BeatSet] = {}
    trained = {}
    for name in names:
        method = models.EXTRACTION[name]
        if method not in extracted:
            extracted[method] = extract.extract_database(
                records, method, _extraction_config(method, args)
            )
            beats = extracted[method]
            yield_text = ", ".join(
                f"{c} {beats.counts()[c]}/{annotated[c]}" for c in mitdb.AAMI_CLASSES
            )
            detail = f", R peaks: {args.kachuee_r}" if method == "kachuee2018" else ""
            print(f"\nbeats [{method}{detail}]: {beats.x.shape}; extracted/annotated {yield_text}")
        beats = extracted[method]
        print(f"\n=== {name} (extraction {method}) ===")
        print(
            f"intra-patient (random 80/20 beat split, as the papers; paper accuracy "
            f"{PAPER_ACCURACY[name]} % on all 48 records) - optimistic:"
        )
        train_idx, test_idx = beat_train.split_intra_patient(beats, 0.2, args.seed)
        trained[name], _ = run_protocol(name, beats, train_idx, test_idx, args)
        print("inter-patient (de Chazal DS1 -> DS2, paced excluded) - the figure to trust:")
        train_idx, test_idx = beat_train.split_inter_patient(beats)
        if len(train_idx) == 0 or len(test_idx) == 0:
            print("  skipped: no DS1 or no DS2 record in the data")
        else:
            if partial:
                print(f"  (partial: DS1 {', '.join(ds1)} -> DS2 {', '.join(ds2)})")
            run_protocol(name, beats, train_idx, test_idx, args)
        print(f"  [{time.perf_counter() - t0:.0f} s elapsed]")

    if args.mi_data and "kachuee2018" in trained:
        run_mi(trained["kachuee2018"], args)
    elif args.mi_data:
        print("\nMI transfer skipped: it starts from the kachuee2018 network (add it to --models)")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


def run_mi(base_model, args) -> None:
    """Grouped cross-validated MI transfer, beat- and record-level."""
    entries = ptb.find_entries([str(p) for p in args.mi_data])
    beats = ptb.mi_beats(entries, "kachuee2018", max_per_record=args.mi_beats_per_record)
    n_mi = sum(e.label for e in entries)
    by_source = {}
    for e in entries:
        key = "PTB" if e.group.startswith("ptb:") else "other"
        by_source.setdefault(key, [0, 0])[e.label] += 1
    print(
        f"\n=== MI transfer (kachuee2018, all but the last two layers frozen) ===\n"
        f"records: {n_mi} MI, {len(entries) - n_mi} healthy (sinus rhythm alone) from "
        f"{', '.join(str(p) for p in args.mi_data)}; {beats.counts(ptb.MI_CLASSES)} beats "
        f"(lead II, at most {args.mi_beats_per_record} per record), "
        f"{np.unique(beats.group).size} patient/record groups, {args.folds} grouped folds"
    )
    print(
        "  by source (healthy, MI): "
        + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in sorted(by_source.items()))
    )
    config = beat_train.BeatTrainConfig(
        epochs=args.mi_epochs, seed=args.seed, device=args.device, max_beats=0
    )
    start = time.perf_counter()
    result = beat_train.transfer_mi(base_model, beats, config, n_folds=args.folds)
    print(f"  beat level (out-of-fold), {time.perf_counter() - start:.0f} s:")
    print(beat_train.format_metrics(result["beat"], indent="  "))
    print("  record level (mean MI probability of its beats >= 0.5):")
    print(beat_train.format_metrics(result["record"], indent="  ", unit="records"))
    oof = result["oof"]
    non_ptb = ~np.char.startswith(beats.group.astype(str), "ptb:") & np.isfinite(oof)
    names = np.unique(beats.record[non_ptb])
    if names.size:
        truth = np.array([beats.y[beats.record == r][0] for r in names])
        pred = np.array([oof[beats.record == r].mean() >= 0.5 for r in names])
        print(
            f"  records outside PTB only: {int((truth == pred).sum())}/{names.size} correct "
            f"({int(truth.sum())} MI)"
        )
    print(
        "  CAVEAT: few patients; every PTB record here is MI (the one PTB record labelled "
        "sinus rhythm, S0002, is patient001's and dropped), so recording source and diagnosis "
        "are confounded; the paper's 95.9 % used 14,552 PTB beats with a random beat split."
    )


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
