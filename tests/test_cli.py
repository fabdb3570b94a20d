"""The ``ecg-kit`` command: each subcommand is its tool (same options, same exit codes), the
Challenge scripts are thin wrappers of the package's CLI, and ``report`` draws records already
classified."""

from __future__ import annotations

import filecmp

import pytest

import run_model
import train_model
from evaluation import evaluate
from team_code import __version__, cli, training
from team_code.cli import report as report_cli
from team_code.cli import run as run_cli
from team_code.cli import train as train_cli
from team_code.data.synth import generate_dataset


def test_the_challenge_scripts_are_the_packages_cli():
    assert (train_model.main, train_model.get_parser) == (train_cli.main, train_cli.get_parser)
    assert (run_model.main, run_model.get_parser) == (run_cli.main, run_cli.get_parser)


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, command in cli.COMMANDS.items():
        assert f"  {name}" in out and command.summary in out
    assert cli.main([]) == 2  # no command: usage on stderr
    assert "usage: ecg-kit COMMAND" in capsys.readouterr().err
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ecg-kit {__version__}"


def test_an_unknown_command_is_named_with_the_known_ones(capsys):
    assert cli.main(["trian", "data", "model"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and "train, run, evaluate" in err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: ecg-kit {name} ")


@pytest.mark.parametrize(
    "command, script, args, status",
    [
        ("train", train_model.main, [], 2),
        ("train", train_model.main, ["d", "m", "--preset", "fast"], 2),
        ("train", train_model.main, ["d", "m", "--classifiers", "nope"], 2),
        ("run", run_model.main, ["no-model", "d", "o"], 2),
        ("run", run_model.main, ["m", "d", "o", "--failure-list", "o/x.csv"], 2),
        ("evaluate", evaluate.main, ["no-labels", "no-outputs"], 1),
        ("evaluate", evaluate.main, ["l", "o", "--bootstrap", "-1"], 1),
        ("evaluate", evaluate.main, ["l", "o", "--task", "2019"], 2),
    ],
)
def test_exit_codes_are_the_scripts(command, script, args, status, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    def status_of(call):
        try:
            return call(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            return exit_.code

    assert status_of(lambda a: cli.main([command, *a])) == status
    kit_err = capsys.readouterr().err.splitlines()[-1]
    assert status_of(script) == status
    script_err = capsys.readouterr().err.splitlines()[-1]
    assert kit_err.replace(f"ecg-kit {command}", "PROG") == script_err.replace(
        "evaluate.py", "PROG"
    ).replace("pytest", "PROG").replace("__main__.py", "PROG")


def test_train_hands_every_option_on_as_train_model_does(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(training, "train", lambda *args, **kwargs: seen.append((args, kwargs)))
    args = ["d", str(tmp_path / "m"), "--classifiers", "rules", "--set", "rules.x=1"]
    args += ["--leads", "12,2", "--task", "2021", "--loader-workers", "3", "--threads", "1"]
    assert cli.main(["train", *args]) == 0
    assert train_model.main(args) == 0
    assert seen[0] == seen[1]


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """Four synthetic records, a prevalence model and its outputs."""
    base = tmp_path_factory.mktemp("classified")
    data, model, outputs = base / "data", base / "model", base / "outputs"
    generate_dataset(data, 4, seed=8)
    assert cli.main(["train", str(data), str(model), "--classifiers", "prevalence"]) == 0
    assert cli.main(["run", str(model), str(data), str(outputs), "--no-progress"]) == 0
    return data, model, outputs


def test_run_and_evaluate_write_what_the_scripts_write(classified, tmp_path):
    data, model, outputs = classified
    assert run_model.main([str(model), str(data), str(tmp_path / "o"), "--no-progress"]) == 0
    names = sorted(p.name for p in outputs.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(outputs, tmp_path / "o", names)
    assert len(names) == 4 and (mismatch, errors) == ([], [])
    assert cli.main(["evaluate", str(data), str(outputs), str(tmp_path / "a.csv"), "--quiet"]) == 0
    assert evaluate.main([str(data), str(outputs), str(tmp_path / "b.csv"), "--quiet"]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_report_draws_classified_records(classified, tmp_path, capsys):
    data, model, outputs = classified
    first = sorted(p.stem for p in data.glob("*.hea"))[0]
    args = [str(model), str(data), str(outputs), str(tmp_path / "r")]
    assert cli.main(["report", *args, "--records", first]) == 0
    assert (tmp_path / "r" / "index.html").is_file()
    assert f"report of 1 records written to {tmp_path / 'r'}" in capsys.readouterr().err


def test_report_names_what_is_missing(classified, tmp_path, capsys):
    data, model, outputs = classified
    args = [str(model), str(data)]
    assert report_cli.main([*args, str(tmp_path / "none"), str(tmp_path / "r")]) == 2
    assert f"outputs folder {tmp_path / 'none'} does not exist" in capsys.readouterr().err
    assert report_cli.main([*args, str(outputs), str(tmp_path / "r"), "--records", "X1"]) == 2
    assert "no output file in" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_synth_writes_records(tmp_path, capsys):
    assert cli.main(["synth", str(tmp_path), "--n", "2", "--seed", "1"]) == 0
    assert len(list(tmp_path.glob("*.hea"))) == 2
    assert f"wrote 2 records to {tmp_path}" in capsys.readouterr().out
