"""Property-based fuzzing of the header parser: any bytes give a Header or a RecordError."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.io import savemat

from team_code.data.records import RecordError, load_record, read_header

TOKENS = [
    "R",
    "R.mat",
    "12",
    "2",
    "1",
    "0",
    "-3",
    "500",
    "257",
    "1e3",
    "nan",
    "inf",
    "x",
    "5000",
    "16",
    "16+24",
    "16x1+24",
    "1000/mV",
    "4880/mV",
    "1000/mv",
    "1000.0(0)/mV",
    "0/mV",
    "abc/mV",
    "200(-100)/uV",
    "1000/furlong",
    "(",
    ")",
    "/",
    "I",
    "II",
    "aVR",
    "V6",
    "05-Feb-2020",
    "11:39:16",
    "../x.mat",
    "/etc/passwd",
    "#Age:",
    "#Dx:",
    "# Dx:",
    "#Sex:",
    "NaN",
    "Unknown",
    "Male",
    ",",
    ",,",
    "164889003",
    "\t",
    " ",
]

line = st.lists(st.sampled_from(TOKENS), max_size=10).map(" ".join)
header_text = st.lists(line, max_size=16).map("\n".join)
raw_bytes = st.binary(max_size=400)


def _check(folder, data: bytes) -> None:
    path = folder / "R.hea"
    path.write_bytes(data)
    try:
        header = read_header(path)
    except RecordError as error:
        assert error.record == "R" and str(error).startswith("record R: ")
        return
    assert header.n_leads == len(header.leads) == len(header.gains) > 0
    assert header.fs > 0 and all(g > 0 for g in header.gains)
    assert "/" not in header.signal_file and header.signal_file not in ("", ".", "..")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=header_text)
def test_structured_headers_never_crash(tmp_path, text):
    _check(tmp_path, text.encode())


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=raw_bytes)
def test_random_bytes_never_crash(tmp_path, data):
    _check(tmp_path, data)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n_decl=st.integers(0, 4),
    n_file=st.integers(1, 4),
    n_samples=st.integers(0, 50),
    declared_samples=st.integers(0, 60),
    fs=st.sampled_from(["500", "1", "0", "x", "10000", "1e6"]),
)
def test_header_and_signal_disagreements(tmp_path, n_decl, n_file, n_samples, declared_samples, fs):
    savemat(tmp_path / "R.mat", {"val": np.ones((n_file, n_samples), np.int16)}, format="4")
    lines = [f"R {n_decl} {fs} {declared_samples}"]
    lines += [f"R.mat 16+24 1000/mV 16 0 0 0 0 L{i}" for i in range(n_decl)]
    (tmp_path / "R.hea").write_text("\n".join(lines) + "\n")
    try:
        record = load_record(tmp_path / "R.hea")
    except RecordError as error:
        assert str(error).startswith("record R: ")
        return
    assert record.signal.shape == (n_decl, n_samples) == (n_file, n_samples)
    assert n_samples > 0 and declared_samples in (0, n_samples) and fs in ("500", "10000")
