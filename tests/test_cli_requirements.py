"""Where the kit's dependencies are not installed, train_model.py and run_model.py say which
are missing and how to install them (exit 2), before any import can fail with a traceback."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from team_code.cli import requirements
from team_code.cli import run as run_cli
from team_code.cli import train as train_cli

REPO = Path(__file__).resolve().parents[1]


def pinned() -> set[str]:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def test_the_checked_packages_are_the_pinned_ones():
    checked = {d.lower() for d in {**requirements.REQUIRED, **requirements.OPTIONAL}.values()}
    assert checked == pinned()


def test_everything_required_is_installed_here():
    assert requirements.missing() == []
    assert requirements.check("train_model.py")


@pytest.fixture
def without_torch(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "torch" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize(
    "main, argv_of",
    [
        (train_cli.main, lambda tmp: [str(tmp / "data"), str(tmp / "model")]),
        (run_cli.main, lambda tmp: [str(tmp / "model"), str(tmp / "data"), str(tmp / "out")]),
    ],
    ids=["train", "run"],
)
def test_a_missing_package_is_named_with_the_install_command(
    main, argv_of, without_torch, tmp_path, capsys
):
    (tmp_path / "data").mkdir()
    assert main(argv_of(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "missing: torch" in err
    assert "scripts/env.sh" in err and "requirements.txt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing written
