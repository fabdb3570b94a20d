"""``ecg-kit report MODEL DATA OUTPUTS REPORT``: per-record pictures (12 leads with QRS marks,
average beats, X/Y/Z loops, scalogram input, rules fired, top scores) and an HTML index of
records already classified, from the outputs ``run`` wrote; ``run --report`` draws the same
while classifying.

Exit status: 0 when the report is written; 2 for a usage error (bad arguments, a MODEL that is
not a model folder, a DATA or OUTPUTS folder that does not exist, a record without an output).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line interface (``prog`` names the command in usage lines)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Draw a picture per record of DATA classified into OUTPUTS by MODEL, and an "
        "HTML index, in REPORT.",
    )
    parser.add_argument("model", help="model folder written by train_model.py")
    parser.add_argument("data", help="folder of records (.hea + .mat)")
    parser.add_argument("outputs", help="folder of the output files run_model.py wrote")
    parser.add_argument("report", help="folder for the pictures and index.html (made if absent)")
    parser.add_argument(
        "--classifier", help="the trained classifier that wrote OUTPUTS (default: the primary)"
    )
    parser.add_argument(
        "--records",
        metavar="NAME[,NAME]",
        help="only these records (default: every record of DATA with an output file)",
    )
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point; returns the exit status (0 written, 2 usage error)."""
    args = get_parser(prog).parse_args(argv)
    from team_code.data.records import find_records
    from team_code.report import report_outputs

    outputs = Path(args.outputs)
    try:
        if not outputs.is_dir():
            raise FileNotFoundError(f"outputs folder {outputs} does not exist")
        if args.records:
            names = [n.strip() for n in args.records.split(",") if n.strip()]
            missing = [n for n in names if not (outputs / f"{n}.csv").is_file()]
            if missing:
                raise FileNotFoundError(
                    f"no output file in {outputs} for record(s) {', '.join(missing)}"
                )
        else:
            names = [
                p.stem for p in find_records(args.data) if (outputs / f"{p.stem}.csv").is_file()
            ]
        index = report_outputs(args.model, args.data, outputs, args.report, names, args.classifier)
    except (KeyError, ValueError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"report of {len(names)} records written to {index}", file=sys.stderr)
    return 0
