"""A corpus of broken and unusual records made from real ones: every record either gets an
output or a clear error naming it (and an all-negative output), and nothing stops the run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from team_code import harness
from team_code.data.outputs import read_output

REPO = Path(__file__).resolve().parents[1]


def _copy(challenge_dir, name, folder, new_name):
    header = (challenge_dir / f"{name}.hea").read_text()
    header = header.replace(f"{name}.mat", f"{new_name}.mat").replace(name, new_name, 1)
    (folder / f"{new_name}.hea").write_text(header)
    shutil.copy(challenge_dir / f"{name}.mat", folder / f"{new_name}.mat")
    return folder / f"{new_name}.hea", folder / f"{new_name}.mat"


def _edit_header(path, old, new, count=-1):
    path.write_text(path.read_text().replace(old, new, count))


def _set_val(path, val):
    savemat(path, {"val": val}, format="4")


@pytest.fixture(scope="module")
def corpus(challenge_dir, tmp_path_factory):
    """(folder, expected outputs, expected errors: record -> text in its message)."""
    folder = tmp_path_factory.mktemp("corpus")
    ok, errors = [], {}
    src = "A0003"  # a real 10-s AF record at 500 Hz
    val = loadmat(challenge_dir / f"{src}.mat")["val"]

    _copy(challenge_dir, src, folder, "OK001")
    ok.append("OK001")
    hea, mat = _copy(challenge_dir, src, folder, "TRUNC")
    mat.write_bytes(mat.read_bytes()[:1000])
    errors["TRUNC"] = "TRUNC"
    hea, mat = _copy(challenge_dir, src, folder, "EMPTY")
    mat.write_bytes(b"")
    errors["EMPTY"] = "is empty"
    hea, mat = _copy(challenge_dir, src, folder, "LEADS")
    _set_val(mat, val[:11])
    errors["LEADS"] = "11 leads but the header declares 12"
    hea, _ = _copy(challenge_dir, src, folder, "GAIN0")
    _edit_header(hea, "1000/mV", "0/mV", 1)
    errors["GAIN0"] = "must be positive"
    hea, _ = _copy(challenge_dir, src, folder, "GAINX")
    _edit_header(hea, "1000/mV", "x/mV", 1)
    errors["GAINX"] = "not a number"
    hea, _ = _copy(challenge_dir, src, folder, "FSX")
    hea.write_text(hea.read_text().replace("FSX 12 500", "FSX 12 fast", 1))
    errors["FSX"] = "sampling frequency"
    hea, mat = _copy(challenge_dir, src, folder, "NANS")
    _set_val(mat, np.where(np.arange(val.shape[1]) == 100, np.nan, val.astype(float)))
    errors["NANS"] = "NaN or infinite"
    hea, mat = _copy(challenge_dir, src, folder, "FLAT1")
    _set_val(mat, np.zeros_like(val))
    ok.append("FLAT1")  # a flat record is valid input
    hea, mat = _copy(challenge_dir, src, folder, "FLATL")
    flat_leads = val.copy()
    flat_leads[3:6] = 0
    _set_val(mat, flat_leads)
    ok.append("FLATL")
    hea, _ = _copy(challenge_dir, src, folder, "BYTES")
    with open(hea, "ab") as handle:
        handle.write(b"#Note: caf\xe9 \xff\xfe\n")
    ok.append("BYTES")  # a stray byte in a comment is valid input
    hea, mat = _copy(challenge_dir, src, folder, "LONG")
    n_long = 257 * 60 * 30  # 30 minutes at 257 Hz
    long_val = np.tile(val, (1, n_long // val.shape[1] + 1))[:, :n_long]
    _set_val(mat, long_val)
    lines = hea.read_text().splitlines()
    lines[0] = f"LONG 12 257 {n_long}"
    hea.write_text("\n".join(lines) + "\n")
    ok.append("LONG")
    for name, fs, ok_expected in (("FS1", 1, False), ("FS10K", 10000, True)):
        hea, mat = _copy(challenge_dir, src, folder, name)
        n = 5000 if not ok_expected else 10000 * 10
        _set_val(mat, np.tile(val, (1, n // val.shape[1] + 1))[:, :n])
        lines = hea.read_text().splitlines()
        lines[0] = f"{name} 12 {fs} {n}"
        hea.write_text("\n".join(lines) + "\n")
        if ok_expected:
            ok.append(name)
        else:
            errors[name] = "outside the 50-20000 Hz"
    hea, _ = _copy(challenge_dir, src, folder, "ESCAP")
    _edit_header(hea, "ESCAP.mat", "../ESCAP.mat")
    errors["ESCAP"] = "points outside"
    hea, mat = _copy(challenge_dir, src, folder, "NOV6")  # a lead missing from the record
    _set_val(mat, val[:11])
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace("NOV6 12", "NOV6 11")
    hea.write_text("\n".join(line for line in lines if not line.endswith(" V6")) + "\n")
    ok.append("NOV6")  # the rules measure what the leads present allow
    return folder, sorted(ok), errors


@pytest.fixture(scope="module")
def rules_model(challenge_dir, tmp_path_factory):
    model = tmp_path_factory.mktemp("model")
    harness.train(challenge_dir, model, ["rules"], {"rules": {"tune": "false"}}, log=lambda m: None)
    return model


def test_broken_corpus_run(corpus, rules_model, tmp_path):
    folder, ok, errors = corpus
    outputs = tmp_path / "out"
    listing = ["--failure-list", tmp_path / "failed.json"]
    done = subprocess.run(
        [sys.executable, "run_model.py", rules_model, folder, outputs, "--no-progress", *listing],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1  # some records failed
    for record, text in errors.items():
        lines = [line for line in done.stderr.splitlines() if f"record {record}:" in line]
        assert lines and text in lines[0], (record, lines)
    # The records in error are listed and have all-negative outputs; every record has a file.
    listed = json.loads((tmp_path / "failed.json").read_text())
    assert listed["written"] == len(ok)
    assert sorted((f["record"], f["output"]) for f in listed["failed"]) == sorted(
        (n, "all-negative") for n in errors
    )
    given = {n: read_output(outputs / f"{n}.csv") for n in [*ok, *errors]}
    assert not any(given[n].labels.any() or given[n].scores.any() for n in errors)
    # Nothing was written outside the output folder, nor anything else inside it.
    assert not (folder.parent / "ESCAP.csv").exists()
    assert sorted(p.name for p in outputs.iterdir()) == sorted(f"{n}.csv" for n in given)
