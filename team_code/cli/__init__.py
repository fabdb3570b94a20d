"""The ``ecg-kit`` command: one entry point for the kit's command-line tools.

::

    ecg-kit train DATA MODEL [...]            same as python train_model.py
    ecg-kit run MODEL DATA OUTPUTS [...]      same as python run_model.py
    ecg-kit evaluate LABELS OUTPUTS [...]     same as python evaluation/evaluate.py
    ecg-kit report MODEL DATA OUTPUTS REPORT  pictures of records already classified
    ecg-kit synth OUT [--n N ...]             synthetic records with planted labels
    ecg-kit leads SOURCE DEST --leads SET     reduced-lead copies of records

Each subcommand takes the options and returns the exit status of the tool it names; ``ecg-kit
SUBCOMMAND --help`` lists them. Nothing is imported until a subcommand is chosen. Uninstalled,
``python -m team_code.cli`` from the repository root is the same command.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    """A subcommand: the module whose ``main(argv, prog)`` runs it (``prog``: the name usage
    lines show, ``ecg-kit NAME``) and a one-line summary."""

    module: str
    summary: str


#: The subcommands, in the order ``ecg-kit --help`` lists them.
COMMANDS: dict[str, Command] = {
    "train": Command("team_code.cli.train", "train classifiers on a folder of records"),
    "run": Command("team_code.cli.run", "classify a folder of records with a trained model"),
    "evaluate": Command("evaluation.evaluate", "score outputs against the records' labels"),
    "report": Command("team_code.cli.report", "draw per-record pictures of classified records"),
    "synth": Command("team_code.data.synth", "write synthetic records with planted labels"),
    "leads": Command("team_code.data.leads", "write reduced-lead copies of records"),
}


def usage() -> str:
    """The text ``ecg-kit --help`` prints."""
    from team_code import __version__

    width = max(map(len, COMMANDS))
    lines = [
        "usage: ecg-kit COMMAND [OPTIONS ...]",
        "",
        f"ECG classification kit {__version__}: the Challenge scripts and tools in one command.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()),
        "",
        "ecg-kit COMMAND --help shows a command's options.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``ecg-kit COMMAND ...``; returns the command's exit status (2 for an unknown one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] == "--version":
        from team_code import __version__

        print(f"ecg-kit {__version__}")
        return 0
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(
            f"ecg-kit: unknown command {name!r}; commands: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    entry = importlib.import_module(command.module).main
    return entry(rest, prog=f"ecg-kit {name}")
