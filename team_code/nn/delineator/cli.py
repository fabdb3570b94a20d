"""The learned delineator's command line, ``python -m team_code.nn.delineator train|folds``:
``train`` builds one model from LUDB's marks (and QTDB's, with ``--qtdb``); ``folds`` one
model per record fold (the out-of-fold models of ``benchmarks/delineation.py``'s
``cnn-5fold``), with ``folds.json`` naming each fold's held-out records. ``--together``
trains a network that reads the twelve leads at once and labels the union of their waves
(the benchmark's ``cnn-together-5fold``; compared, not shipped).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from team_code.nn.delineator.data import (
    LUDB_LEADS,
    _folder_records,
    fold_split,
    load_ludb,
    load_ludb_together,
    load_qtdb,
)
from team_code.nn.delineator.inputs import SECOND_CHANNELS
from team_code.nn.delineator.net import NetConfig, save
from team_code.nn.delineator.training import TrainConfig, train


def get_parser() -> argparse.ArgumentParser:
    """``train`` (one model) and ``folds`` (one model per record fold)."""
    p = argparse.ArgumentParser(
        prog="python -m team_code.nn.delineator",
        description=sys.modules[__package__].__doc__.split("\n\n")[0],
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("train", "train one model on the records (default: all of the folder)"),
        ("folds", "train one model per record fold; writes folds.json beside the weights"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--ludb", type=Path, required=True, help="LUDB folder (WFDB records)")
        s.add_argument(
            "--out",
            type=Path,
            required=True,
            help="weights file (train) or folder (folds)",
        )
        s.add_argument("--records", nargs="+", default=None, help="record names (default all)")
        s.add_argument(
            "--qtdb",
            type=Path,
            default=None,
            help="QTDB folder: its records' .q1c marks join the training (folds: split as LUDB's)",
        )
        s.add_argument("--epochs", type=int, default=TrainConfig.epochs)
        s.add_argument("--batch", type=int, default=TrainConfig.batch)
        s.add_argument(
            "--together",
            action="store_true",
            help="one network reads the twelve leads at once and labels the union of their "
            "waves (the CSE-style global waves; not with --qtdb)",
        )
        s.add_argument(
            "--lead-dropout",
            type=float,
            default=TrainConfig.lead_dropout,
            help="with --together: the chance that a training crop loses a lead",
        )
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--widths", type=int, nargs="+", default=list(NetConfig.widths))
        s.add_argument("--kernel", type=int, default=NetConfig.kernel)
        s.add_argument(
            "--lowpass-hz",
            type=float,
            default=NetConfig.lowpass_hz,
            help="the input's low-pass cut-off (0: none)",
        )
        s.add_argument(
            "--input-channels",
            type=int,
            choices=(1, 2),
            default=NetConfig.input_channels,
            help="1: the low-passed lead; 2: also a second channel (--second-channel)",
        )
        s.add_argument(
            "--second-channel",
            choices=SECOND_CHANNELS,
            default=NetConfig.second_channel,
            help="with --input-channels 2: the lead without the low-pass (wide) or the root "
            "mean square of the record's leads (context)",
        )
        s.add_argument(
            "--dilation",
            type=int,
            default=NetConfig.dilation,
            help="dilation of the coarsest level's second convolution",
        )
        s.add_argument(
            "--edge-weight",
            type=float,
            default=TrainConfig.edge_weight,
            help="extra loss weight of samples near a marked wave boundary",
        )
        if name == "folds":
            s.add_argument("--k", type=int, default=5, help="number of folds")
            s.add_argument("--split-seed", type=int, default=0, help="seed of the fold split")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see :func:`get_parser`)."""
    args = get_parser().parse_args(argv)
    torch.set_num_threads(1)
    folder = Path(args.ludb)
    if not folder.is_dir():
        print(f"error: LUDB folder {folder} not found", file=sys.stderr)
        return 2
    records = _folder_records(folder, args.records)
    qtdb = Path(args.qtdb) if args.qtdb else None
    if args.together and (qtdb is not None or args.input_channels != 1):
        print("error: --together reads LUDB's twelve leads, one channel each", file=sys.stderr)
        return 2
    if args.lead_dropout and not args.together:
        print("error: --lead-dropout needs --together", file=sys.stderr)
        return 2
    if qtdb is not None and not qtdb.is_dir():
        print(f"error: QTDB folder {qtdb} not found", file=sys.stderr)
        return 2
    qtdb_records = (
        [r for r in _folder_records(qtdb, None) if (qtdb / f"{r}.q1c").is_file()] if qtdb else []
    )
    net = NetConfig(
        widths=tuple(args.widths),
        kernel=args.kernel,
        dilation=args.dilation,
        lowpass_hz=args.lowpass_hz,
        input_channels=args.input_channels,
        second_channel=args.second_channel,
        leads=len(LUDB_LEADS) if args.together else 1,
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        batch=args.batch,
        seed=args.seed,
        edge_weight=args.edge_weight,
        lead_dropout=args.lead_dropout,
    )

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def fit(train_records: Sequence[str], out: Path, train_qtdb: Sequence[str] = ()) -> None:
        t0 = time.perf_counter()
        if net.leads > 1:
            inputs, labels = load_ludb_together(folder, train_records, net.lowpass_hz)
        else:
            inputs, labels = load_ludb(
                folder, train_records, net.lowpass_hz, net.input_channels, net.second_channel
            )
        if train_qtdb:
            more = load_qtdb(
                qtdb,
                train_qtdb,
                net.lowpass_hz,
                net.input_channels,
                labels.shape[1],
                net.second_channel,
            )
            inputs, labels = np.concatenate([inputs, more[0]]), np.concatenate([labels, more[1]])
        model = train(inputs, labels, net, cfg, log=log)
        facts = {
            "records": list(train_records),
            "qtdb_records": list(train_qtdb),
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "edge_weight": cfg.edge_weight,
            "batch": cfg.batch,
            "lead_dropout": cfg.lead_dropout,
            "seconds": round(time.perf_counter() - t0, 1),
        }
        save(model, out, facts)
        log(f"wrote {out} ({out.stat().st_size} bytes, {facts['seconds']} s)")

    if args.command == "train":
        fit(records, args.out, qtdb_records)
        return 0
    folds = fold_split(records, args.k, args.split_seed)
    qtdb_folds = fold_split(qtdb_records, args.k, args.split_seed) if qtdb_records else None
    args.out.mkdir(parents=True, exist_ok=True)
    index = {}
    for f, held in enumerate(folds):
        name = f"fold{f}.safetensors"
        held_qtdb = qtdb_folds[f] if qtdb_folds else []
        fit(
            [r for r in records if r not in set(held)],
            args.out / name,
            [r for r in qtdb_records if r not in set(held_qtdb)],
        )
        index[name] = held + held_qtdb
    (args.out / "folds.json").write_text(json.dumps(index, indent=1) + "\n")
    log(f"wrote {args.out / 'folds.json'}")
    return 0
