"""Records as a hospital may send them: folders with the files an archiver or an operating
system adds, and signal files saved in a MATLAB format other than the Challenge's v4.

Every record is built here in ``tmp_path``; no real data is needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from team_code import harness
from team_code.data.outputs import read_output
from team_code.data.records import RecordError, find_records, load_record
from team_code.data.synth import generate_dataset

#: The start of a macOS AppleDouble file (``._NAME``), which the Finder and its zip archives
#: put beside every file copied to a disk or an archive that lacks extended attributes.
APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02"


def _records(folder: Path, n: int) -> Path:
    """``n`` short synthetic records ``R00001``, ``R00002``, ... in ``folder``."""
    generate_dataset(folder, n, seed=5, duration_s=5, prefix="R")
    return folder


def _hide(folder: Path, name: str) -> None:
    """Put the macOS companions ``._NAME.hea`` and ``._NAME.mat`` beside record ``name``, and a
    hidden copy of its header (``.NAME.hea``, an editor's backup)."""
    for suffix in (".hea", ".mat"):
        (folder / f"._{name}{suffix}").write_bytes(APPLEDOUBLE)
    (folder / f".{name}.hea").write_bytes((folder / f"{name}.hea").read_bytes())


@pytest.fixture(scope="module")
def prevalence_model(tmp_path_factory):
    data = _records(tmp_path_factory.mktemp("train"), 3)
    model = tmp_path_factory.mktemp("model")
    harness.train(data, model, ["prevalence"], log=lambda m: None, progress=False)
    return model


def test_hidden_files_are_not_records(tmp_path):
    data = _records(tmp_path, 2)
    _hide(data, "R00001")
    assert [p.name for p in find_records(data)] == ["R00001.hea", "R00002.hea"]


def test_macos_companions_cost_no_output_and_no_failure(prevalence_model, tmp_path):
    data = _records(tmp_path / "data", 2)
    _hide(data, "R00001")
    outputs = tmp_path / "out"
    result = harness.run(prevalence_model, data, outputs, progress=False, log=lambda m: None)
    assert result.failures == []
    assert result.written == ["R00001", "R00002"]
    assert sorted(p.name for p in outputs.iterdir()) == ["R00001.csv", "R00002.csv"]
    assert read_output(outputs / "R00001.csv").record == "R00001"


def _matlab_73(path: Path) -> None:
    """The start of a MATLAB v7.3 file: its 128-byte text header (version 0x0200), then HDF5."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    path.write_bytes(header + b"\x00" * 384 + b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)


def test_matlab_73_signal_file_is_named_as_such(tmp_path):
    _records(tmp_path, 1)
    _matlab_73(tmp_path / "R00001.mat")
    with pytest.raises(RecordError) as caught:
        load_record(tmp_path / "R00001.hea")
    message = str(caught.value)
    assert message.startswith("record R00001: signal file R00001.mat is MATLAB v7.3 (HDF5)")
    assert "MATLAB v4" in message and "truncated" not in message


def _strip_lead_names(header: Path) -> None:
    """Drop the description (the lead name) from every signal line of ``header``: WFDB makes
    it optional, and the reader then names the leads ``lead1``, ``lead2``, ..."""
    lines = header.read_text().splitlines()
    n_leads = int(lines[0].split()[1])
    for i in range(1, n_leads + 1):
        lines[i] = " ".join(lines[i].split()[:8])
    header.write_text("\n".join(lines) + "\n")


def test_a_record_without_any_of_the_models_leads_is_refused(prevalence_model, tmp_path):
    data = _records(tmp_path / "data", 2)
    _strip_lead_names(data / "R00001.hea")
    assert load_record(data / "R00001.hea").leads[:2] == ("lead1", "lead2")
    outputs = tmp_path / "out"
    result = harness.run(prevalence_model, data, outputs, progress=False, log=lambda m: None)
    assert result.written == ["R00002"]
    [(record, reason)] = result.failures
    assert record == "R00001"
    assert reason.startswith("has none of the leads the model reads (I, II, III, aVR")
    assert reason.endswith(
        "its leads: lead1, lead2, lead3, lead4, lead5, lead6, lead7, lead8, "
        "lead9, lead10, lead11, lead12"
    )
    assert result.placeholders == ["R00001"]  # all-negative, the folder stays scoreable
    assert not read_output(outputs / "R00001.csv").scores.any()


def test_the_organizers_2020_call_refuses_it_too(prevalence_model, tmp_path, capsys):
    from scipy.io import loadmat

    from run_12ECG_classifier import load_12ECG_model, run_12ECG_classifier

    data = _records(tmp_path, 1)
    _strip_lead_names(data / "R00001.hea")
    model = load_12ECG_model(str(prevalence_model))
    val = np.asarray(loadmat(data / "R00001.mat")["val"], dtype=np.float64)
    with open(data / "R00001.hea") as handle:
        labels, scores, classes = run_12ECG_classifier(val, handle.readlines(), model)
    assert len(classes) == len(scores) and not np.any(labels) and not np.any(scores)
    assert "error: record R00001: has none of the leads the model reads" in capsys.readouterr().err


def test_a_wfdb_dat_signal_file_is_named_as_such(tmp_path):
    """A record in WFDB's own binary format (PhysioNet's native releases, format 16 in a
    ``.dat`` file) is refused with what it is, not as a truncated MATLAB file."""
    from scipy.io import loadmat

    _records(tmp_path, 1)
    val = loadmat(tmp_path / "R00001.mat")["val"]
    (tmp_path / "R00001.mat").unlink()
    (tmp_path / "R00001.dat").write_bytes(val.T.astype("<i2").tobytes())
    header = tmp_path / "R00001.hea"
    header.write_text(header.read_text().replace("R00001.mat 16+24", "R00001.dat 16"))
    with pytest.raises(RecordError) as caught:
        load_record(header)
    message = str(caught.value)
    assert message.startswith("record R00001: signal file R00001.dat is not a MATLAB file")
    assert "truncated" not in message


def test_einthoven_leads_written_di_dii_diii_are_read_as_i_ii_iii(tmp_path):
    """A header naming the limb leads DI, DII, DIII (or D1, D2, D3) reads the same record."""
    data = _records(tmp_path, 1)
    header = data / "R00001.hea"
    original = load_record(header)
    text = header.read_text()
    for names in (("DI", "DII", "DIII"), ("D1", "D2", "D3")):
        lines = text.splitlines()
        for i, name in zip((1, 2, 3), names, strict=True):
            fields = lines[i].split()
            assert fields[-1] == ("I", "II", "III")[i - 1]
            lines[i] = " ".join([*fields[:-1], name])
        header.write_text("\n".join(lines) + "\n")
        renamed = load_record(header)
        assert renamed.leads == original.leads
        np.testing.assert_array_equal(renamed.signal, original.signal)
    header.write_text(text)


def test_a_utf16_header_is_read(tmp_path):
    """A header saved as UTF-16 (with its byte-order mark, as Windows editors save text) reads
    as the UTF-8 one does."""
    data = _records(tmp_path, 1)
    header = data / "R00001.hea"
    original = load_record(header)
    text = header.read_text()
    for encoding in ("utf-16", "utf-16-be", "utf-8-sig"):
        raw = text.encode(encoding)
        if encoding == "utf-16-be":
            raw = b"\xfe\xff" + raw
        header.write_bytes(raw)
        again = load_record(header)
        assert again.leads == original.leads and again.fs == original.fs
        assert again.labels == original.labels
        np.testing.assert_array_equal(again.signal, original.signal)


def test_a_signal_file_named_in_another_case_is_found(tmp_path):
    """A record copied from a case-insensitive disk (``R00001.MAT``, the header naming
    ``R00001.mat``) reads; a missing one is still named missing."""
    data = _records(tmp_path, 2)
    original = load_record(data / "R00001.hea")
    (data / "R00001.mat").rename(data / "R00001.MAT")
    again = load_record(data / "R00001.hea")
    np.testing.assert_array_equal(again.signal, original.signal)
    (data / "R00002.mat").unlink()
    with pytest.raises(RecordError, match=r"signal file R00002\.mat is missing"):
        load_record(data / "R00002.hea")
