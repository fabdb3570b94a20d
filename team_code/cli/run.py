"""``ecg-kit run MODEL DATA OUTPUTS`` and ``python run_model.py MODEL DATA OUTPUTS``: classify
records, one OUTPUTS/<record>.csv each.

Exit status: 0 when every record got its classifier's output; 1 when some records failed
(each named on stderr, given an all-negative output where it can be written, and listed in
``--failure-list``), unless ``--allow-failures``; 2 for a usage error (bad arguments, a
MODEL that is not a model folder or cannot be loaded, a DATA folder that does not exist, an
OUTPUTS that is not a folder), in which case no output is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from team_code.cli import requirements


def get_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line interface (``prog`` names the command in usage lines)."""
    parser = argparse.ArgumentParser(
        prog=prog,
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
        "--failure-list",
        metavar="FILE",
        help="also write the failed records as JSON to FILE ({'n_records', 'written', "
        "'failed': [{'record', 'reason', 'output'}]}; 'output' is 'all-negative' or 'none'); "
        "written on every run, with an empty list when nothing failed",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes classifying records in parallel (outputs are identical to 1 worker)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="compute threads per process (default: $OMP_NUM_THREADS, else the cores this "
        "process may use less those busy with other work, shared among the workers)",
    )
    parser.add_argument(
        "--report",
        metavar="DIR",
        help="also draw a picture per record (12 leads with QRS marks, average beats, X/Y/Z "
        "loops, scalogram input, rules fired, top scores) and an HTML index in DIR",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="where deep engines run: 'auto' (CUDA when present; the default), 'cpu', "
        "'cuda', 'cuda:N'",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 some records failed unless allowed,
    2 usage error)."""
    if not requirements.check(prog or "run_model.py"):
        return 2
    parser = get_parser(prog)
    args = parser.parse_args(argv)
    from team_code import inference

    failure_list = Path(args.failure_list) if args.failure_list else None
    if failure_list is not None and (
        failure_list.is_dir()
        or (
            failure_list.suffix.lower() == ".csv"
            and failure_list.resolve().parent == Path(args.outputs).resolve()
        )
    ):
        parser.error(f"--failure-list {failure_list} must be a file, not OUTPUTS/<name>.csv")
    try:
        result = inference.run(
            args.model,
            args.data,
            args.outputs,
            classifier=args.classifier,
            workers=args.workers,
            progress=not args.no_progress,
            threads=args.threads,
            device=args.device,
        )
    except (KeyError, ValueError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(
        f"wrote {len(result.written)} outputs to {args.outputs}; "
        f"{len(result.failures)} records failed"
        + (
            f" ({len(result.placeholders)} given an all-negative output)" if result.failures else ""
        ),
        file=sys.stderr,
    )
    listed = failure_list is None or _write_failure_list(failure_list, result)
    if args.report:
        from team_code.report import report_outputs

        index = report_outputs(
            args.model, args.data, args.outputs, args.report, result.written, args.classifier
        )
        print(f"report written to {index}", file=sys.stderr)
    if (result.failures and not args.allow_failures) or not listed:
        return 1
    return 0


def _write_failure_list(path: Path, result) -> bool:
    """Write the failed records as JSON; False (with a message) when that fails."""
    from team_code.fileio import save_json

    placeholders = set(result.placeholders)
    failed = [
        {
            "record": record,
            "reason": reason,
            "output": "all-negative" if record in placeholders else "none",
        }
        for record, reason in result.failures
    ]
    summary = {
        "n_records": len(result.written) + len(result.failures),
        "written": len(result.written),
        "failed": failed,
    }
    try:
        save_json(path, summary)
    except OSError as error:
        print(f"error: the failure list {path} could not be written: {error}", file=sys.stderr)
        return False
    return True
