"""The kit installed and not: ``pip install .`` into a fresh virtual environment gives the
``ecg-kit`` command and both packages with their scoring tables; the three Challenge scripts
run from another current folder without the package installed; neither the package nor the
benchmarks edit ``sys.path``.

The virtual environments are made without pip and see the running environment's packages
(numpy, torch, pip, setuptools) through a ``.pth`` line, so nothing is downloaded or
reinstalled; the kit itself is built from a copy of the checkout, which stays untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from team_code import __version__
from team_code.data.synth import generate_dataset

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "train": ROOT / "train_model.py",
    "run": ROOT / "run_model.py",
    "evaluate": ROOT / "evaluation" / "evaluate.py",
}


def _environment() -> dict[str, str]:
    """The test process's environment without anything that puts the checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def _call(args, cwd, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def _bare_venv(folder: Path) -> Path:
    """A virtual environment without the kit that reads the running one's packages; returns
    its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = folder / "bin" / "python"
    site = _call(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], folder
    )
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    Path(site.stdout.strip(), "ecg_kit_test_deps.pth").write_text("\n".join(paths) + "\n")
    probe = "import importlib.util as u; print(u.find_spec('team_code'), u.find_spec('evaluation'))"
    assert _call([python, "-c", probe], folder).stdout.split() == ["None", "None"], (
        "the running environment has the kit installed as a plain copy (not editable): "
        "the 'uninstalled' environment would see it"
    )
    return python


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("records")
    generate_dataset(folder, 6, seed=3)
    return folder


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    return _bare_venv(tmp_path_factory.mktemp("bare") / "venv")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment with the kit installed by ``pip install .``; returns its bin/."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("team_code", "evaluation"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    python = _bare_venv(base / "venv")
    pip = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    _call([*pip, "--ignore-installed", "--quiet", source], base)
    return python.parent


def test_pip_install_gives_the_command_the_packages_and_their_tables(installed, tmp_path):
    assert _call([installed / "ecg-kit", "--version"], tmp_path).stdout.strip() == (
        f"ecg-kit {__version__}"
    )
    probe = (
        "import team_code, evaluation, team_code.cli, team_code.nn, team_code.dsp\n"
        "from evaluation import tables\n"
        "print(team_code.__file__)\n"
        "print(*(tables.task_weights_path(t).is_file() for t in tables.TASKS))\n"
        "print(len(tables.load_task_table('2021').classes))\n"
    )
    where, tables_found, classes_2021 = _call(
        [installed / "python", "-c", probe], tmp_path
    ).stdout.splitlines()
    assert Path(where).is_relative_to(installed.parent), where
    assert tables_found == "True True"
    assert classes_2021 == "26"


def test_ecg_kit_trains_runs_and_scores_from_another_folder(installed, records, tmp_path):
    """From a folder that is not the checkout, the installed command makes records, trains,
    classifies and scores them (``tests/test_cli.py`` checks that each subcommand is its
    script, in this process)."""
    kit = installed / "ecg-kit"
    _call([kit, "synth", "more", "--n", "2", "--seed", "4"], tmp_path)
    assert sorted(p.name for p in (tmp_path / "more").glob("*.hea")) == [
        "SYN00001.hea",
        "SYN00002.hea",
    ]
    _call(
        [kit, "train", records, "model", "--classifiers", "prevalence", "--no-progress"], tmp_path
    )
    _call([kit, "run", "model", records, "out", "--no-progress"], tmp_path)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"{p.stem}.csv" for p in sorted(records.glob("*.hea"))]
    _call([kit, "evaluate", records, "out", "scores.csv", "--quiet"], tmp_path)
    assert (tmp_path / "scores.csv").read_text().startswith("AUROC,AUPRC,Accuracy,F-measure,")
    done = _call([kit, "run", "no-model", records, "out2"], tmp_path, check=False)
    assert done.returncode == 2 and "no-model" in done.stderr


def test_challenge_scripts_run_uninstalled_from_another_folder(bare_python, records, tmp_path):
    """``python /path/to/train_model.py`` etc. with the kit not installed, the current folder
    elsewhere, no PYTHONPATH."""
    python = bare_python
    _call([python, SCRIPTS["train"], records, "m", "--classifiers", "prevalence"], tmp_path)
    _call([python, SCRIPTS["run"], "m", records, "o", "--no-progress"], tmp_path)
    assert len(list((tmp_path / "o").glob("*.csv"))) == 6
    _call([python, SCRIPTS["evaluate"], records, "o", "s.csv", "--quiet"], tmp_path)
    assert (tmp_path / "s.csv").read_text().startswith("AUROC,")
    # uninstalled, the command is python -m team_code.cli from the repository root
    done = _call([python, "-m", "team_code.cli", "--version"], ROOT)
    assert done.stdout.strip() == f"ecg-kit {__version__}"


def test_no_sys_path_edits_in_the_package_or_the_benchmarks():
    edits = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)|\[|\+?=)")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("team_code", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if edits.search(line)
    ]
    assert found == []
