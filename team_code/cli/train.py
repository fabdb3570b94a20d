"""``ecg-kit train DATA MODEL`` and ``python train_model.py DATA MODEL``: train classifiers on a
folder of Challenge records and write a model folder."""

from __future__ import annotations

import argparse
import sys

from team_code.cli import requirements


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line interface (``prog`` names the command in usage lines)."""
    from team_code.options import DEFAULT_CLASSIFIERS
    from team_code.presets import PRESET_ENV, PRESETS
    from team_code.training import CACHE_CHOICES

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train the ECG classifiers on a folder of WFDB .hea + .mat records.",
    )
    parser.add_argument("data", help="folder of training records (.hea + .mat)")
    parser.add_argument("model", help="model folder to write (created if missing)")
    parser.add_argument(
        "--classifiers",
        default=",".join(DEFAULT_CLASSIFIERS),
        help="comma-separated classifier names to train; the first is the primary one used "
        "by run_model.py (default: %(default)s)",
    )
    parser.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="CLASSIFIER.OPTION=VALUE",
        help="set a classifier option, e.g. --set parallel_cnn.epochs=5 (repeatable)",
    )
    parser.add_argument(
        "--beat-data",
        action="append",
        default=[],
        metavar="DIR[,DIR]",
        help="MIT-BIH (and PTB) record folders for the beat-level networks; repeatable. "
        "Trains the 'beats' classifier's networks and adds it to the hybrid",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted training from the checkpoints in MODEL/.work",
    )
    parser.add_argument(
        "--preset",
        default=None,
        choices=sorted(PRESETS),
        help="option set: 'paper' (the papers' settings, for a GPU) or 'cpu' (every deep "
        f"engine sized for a 2-core CPU); --set options win (default: ${PRESET_ENV} when set, "
        "else 'paper' where the training runs on CUDA and 'cpu' elsewhere)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="compute threads (default: $OMP_NUM_THREADS, else the cores this process may use, "
        "shared among torchrun's local processes; never the machine's load, which would change "
        "the weights; recorded in the manifest)",
    )
    parser.add_argument(
        "--cache",
        default="remove",
        choices=CACHE_CHOICES,
        help="after training, 'remove' (the default) deletes the per-record caches in "
        "MODEL/.cache, 'keep' keeps them for the next training on the same records; a "
        "$ECG_KIT_CACHE folder is always kept",
    )
    parser.add_argument(
        "--task",
        default="2020",
        help="the scoring table to train for: '2020' (24 classes), '2021' (26 classes) or "
        "the path of a weights.csv with its dx_mapping_scored.csv beside it (default: 2020)",
    )
    parser.add_argument(
        "--leads",
        default="12",
        help="lead sets to train one model each for, separated by ';' or given by size "
        "separated by ',' (12,6,4,3,2: the 2021 Challenge's sets; e.g. '12,2'), or one set "
        "of lead names ('I,II,V2'); run_model.py serves each record with the largest set it "
        "has (default: 12)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where deep engines train: 'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:N'",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes preprocessing and measuring records (default 0: the compute threads)",
    )
    parser.add_argument(
        "--loader-workers",
        type=int,
        default=0,
        help="DataLoader processes feeding the deep engines' batches (default 0: the training "
        "process reads them; on a GPU a few keep it busy)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars or progress lines"
    )
    parser.add_argument("--list", action="store_true", help="list the known classifiers and exit")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point; returns the exit status (0 trained, 2 bad arguments or data, 3 a training
    diverged)."""
    if not requirements.check(prog or "train_model.py"):
        return 2
    args = get_parser(prog).parse_args(argv)
    from team_code import training
    from team_code.classifiers import registry
    from team_code.data.leads import parse_lead_sets
    from team_code.options import parse_options
    from team_code.runs import TrainingDiverged

    if args.list:
        print("\n".join(registry.available()))
        return 0
    names = [n.strip() for n in args.classifiers.split(",") if n.strip()]
    try:
        options = parse_options(args.options)
        if args.beat_data:
            folders = [f for item in args.beat_data for f in item.split(",") if f]
            options.setdefault("beats", {})["beat_data"] = ",".join(folders)
        training.train(
            args.data,
            args.model,
            names,
            options,
            resume=args.resume,
            preset=args.preset,
            progress=not args.no_progress,
            cache=args.cache,
            table=args.task,
            lead_sets=parse_lead_sets(args.leads),
            device=args.device,
            workers=args.workers,
            loader_workers=args.loader_workers,
            threads=args.threads,
        )
    except TrainingDiverged as error:  # no model is written; the message says what to change
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (KeyError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"model written to {args.model}")
    return 0
