"""Imports point one way: data -> dsp -> classifiers/beats/nn -> (options, training, model
loading, inference, report) -> cli. The lower packages never import the modules that drive
them: parsed with ``ast``, so that a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "team_code"

#: The packages that the harness's modules drive, and so may not import.
LOWER = ("classifiers", "nn", "data", "dsp", "beats")

#: The modules that drive them: options, training, model loading, inference, the report of a
#: run, the organizers' entry points, the harness's facade, the CLI.
UPPER = (
    "team_code.harness",
    "team_code.training",
    "team_code.model_folder",
    "team_code.inference",
    "team_code.report",
    "team_code.challenge_api",
    "team_code.options",
    "team_code.cli",
)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source``, at any depth: ``from team_code import
    harness`` gives ``team_code`` and ``team_code.harness``; a relative import (the kit uses
    none) gives its dots and module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
                continue
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def upward(module: str) -> bool:
    return any(module == up or module.startswith(up + ".") for up in UPPER)


def test_the_checker_sees_every_form_of_an_upward_import():
    source = (
        "import team_code.harness\n"
        "from team_code import training\n"
        "def f():\n"
        "    from team_code.inference import run\n"
        "from team_code.cli.run import main\n"
        "from team_code.context import is_main_process\n"
        "from team_code.model_folder import load_model\n"
        "import team_code.report\n"
        "from team_code import challenge_api\n"
    )
    lines = {line for line, module in imported_modules(source) if upward(module)}
    assert lines == {1, 2, 4, 5, 7, 8, 9}


@pytest.mark.parametrize("package", LOWER)
def test_lower_packages_never_import_the_modules_that_drive_them(package):
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files, f"no modules under team_code/{package}"
    wrong = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path.read_text(encoding="utf-8"))
        if upward(module) or module.startswith(".")
    ]
    assert not wrong, "imports pointing back up:\n" + "\n".join(wrong)
