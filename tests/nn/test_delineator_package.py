"""The learned delineator's package (team_code.nn.delineator): its rooms import one way, it
runs as ``python -m team_code.nn.delineator``, and its weights lie where the build command,
the wheel and git's ignore list put them."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import team_code
from team_code.nn import delineator as d

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(d.__file__).parent
#: the modules that run without torch and without the network's modules
NO_TORCH = ("inputs", "post", "data")
NETWORK = ("net", "inference", "training", "cli")


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_rooms_without_the_network_import_neither_torch_nor_it():
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(
        ["__init__", "__main__", *NO_TORCH, *NETWORK]
    )
    for module in NO_TORCH:
        names = _imports(module)
        assert not {n for n in names if n.split(".")[0] == "torch"}, module
        assert not {n for n in names if n.rsplit(".", 1)[-1] in NETWORK}, module


def test_every_public_name_is_re_exported_from_the_module_that_owns_it():
    modules = [
        importlib.import_module(f"team_code.nn.delineator.{m}") for m in (*NO_TORCH, *NETWORK)
    ]
    for name in d.__all__:
        obj = getattr(d, name)
        owners = [m.__name__ for m in modules if vars(m).get(name) is obj]
        assert owners, name
        if callable(obj):  # a function or class: defined in one of the rooms
            assert obj.__module__ in owners, name


def test_the_weights_lie_where_the_build_command_the_wheel_and_git_put_them():
    expected = Path(team_code.__file__).parent / "nn" / "delineator.safetensors"
    assert expected == d.WEIGHTS
    rel = expected.relative_to(ROOT).as_posix()
    assert d.BUILD_COMMAND.endswith(f"--out {rel}")
    assert (
        f'team_code = ["{expected.relative_to(ROOT / "team_code").as_posix()}"]'
        in (ROOT / "pyproject.toml").read_text()
    )
    assert f"/{rel}" in (ROOT / ".gitignore").read_text().split()


def test_the_package_runs_as_a_command():
    for args, shown in (([], "A small learned wave delineator"), (["train"], "--input-channels")):
        done = subprocess.run(
            [sys.executable, "-W", "error", "-m", "team_code.nn.delineator", *args, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        assert done.stdout.startswith("usage: python -m team_code.nn.delineator")
        assert shown in done.stdout
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "team_code.nn.delineator",
            "train",
            "--ludb",
            "/nowhere",
            "--out",
            "/nowhere/w.safetensors",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "LUDB folder /nowhere not found" in done.stderr
