#!/usr/bin/env python
"""Classify records: ``python run_model.py MODEL DATA OUTPUTS`` writes OUTPUTS/<record>.csv."""

from __future__ import annotations

import argparse
import sys


def get_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        description="Write one Challenge output file per record of DATA using a trained MODEL.",
    )
    parser.add_argument("model", help="model folder written by train_model.py")
    parser.add_argument("data", help="folder of records (.hea + .mat)")
    parser.add_argument("outputs", help="folder for the output files (created if missing)")
    parser.add_argument(
        "--classifier", help="which trained classifier to use (default: the model's primary)"
    )
    parser.add_argument(
        "--allow-failures",
        action="store_true",
        help="exit 0 even when some records could not be classified",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes classifying records in parallel (outputs are identical to 1 worker)",
    )
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="also draw a picture per record (12 leads with QRS marks, average beats, X/Y/Z "
        "loops, scalogram input, rules fired, top scores) and an HTML index in DIR",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when a record failed, unless allowed)."""
    args = get_parser().parse_args(argv)
    from team_code import harness

    try:
        result = harness.run(
            args.model,
            args.data,
            args.outputs,
            classifier=args.classifier,
            workers=args.workers,
            progress=not args.no_progress,
        )
    except (KeyError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(result.written)} outputs to {args.outputs}; "
        f"{len(result.failures)} records failed",
        file=sys.stderr,
    )
    if args.report:
        index = harness.report(
            args.model, args.data, args.outputs, args.report, result.written, args.classifier
        )
        print(f"report written to {index}", file=sys.stderr)
    if result.failures and not args.allow_failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
