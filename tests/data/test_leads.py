"""Reduced-lead copies of real Challenge records: signals, headers and the readers that use them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from team_code.data.leads import LEAD_SETS, main, parse_leads, reduce_record
from team_code.data.records import STANDARD_LEADS, RecordError, load_record

# One record of each header dialect: CPSC 2020, Georgia (file name in the record line, gain
# 4880/mV), PTB-XL (lower-case mv), PTB (1000 Hz, 38 s), and the 2021 release.
RECORDS = (
    "challenge/A0002",
    "challenge/E00015",
    "challenge/HR00001",
    "challenge/S0001",
    "dialects/release2021/E07500",
)


def _content_lines(text: str) -> tuple[str, list[str], list[str]]:
    """(record line, signal lines, comment lines) of a header text."""
    lines = text.splitlines()
    body = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    return body[0], body[1:], [line for line in lines if line.strip().startswith("#")]


def test_lead_sets_of_the_2021_challenge():
    assert parse_leads("12") == STANDARD_LEADS
    assert parse_leads("6") == ("I", "II", "III", "aVR", "aVL", "aVF")
    assert parse_leads("4") == ("I", "II", "III", "V2")
    assert parse_leads("3") == ("I", "II", "V2")
    assert parse_leads("2") == ("I", "II")
    assert parse_leads(" v2, i ,AVR") == ("V2", "I", "aVR")  # canonical spelling, order kept
    with pytest.raises(ValueError, match="named twice"):
        parse_leads("I,II,i")
    with pytest.raises(ValueError, match="no leads"):
        parse_leads(" , ")


@pytest.mark.parametrize("name", RECORDS)
def test_every_lead_set_round_trips(shared_data, tmp_path, name):
    source = shared_data / f"{name}.hea"
    original = load_record(source)
    src_line, src_signals, src_comments = _content_lines(source.read_text(errors="replace"))
    for set_name, leads in LEAD_SETS.items():
        copy_path = reduce_record(source, tmp_path / set_name, leads)
        copy = load_record(copy_path)
        assert copy.leads == leads
        np.testing.assert_array_equal(copy.signal, original.select_leads(leads))
        assert (copy.name, copy.fs, copy.age, copy.sex, copy.labels) == (
            original.name,
            original.fs,
            original.age,
            original.sex,
            original.labels,
        )
        line, signals, comments = _content_lines(copy_path.read_text(errors="replace"))
        fields, src_fields = line.split(), src_line.split()
        assert fields[1] == str(len(leads))
        assert fields[:1] + fields[2:] == src_fields[:1] + src_fields[2:]
        assert signals == [src_signals[original.leads.index(lead)] for lead in leads]
        assert comments == src_comments


def test_a_chosen_order_and_the_wfdb_reader(shared_data, tmp_path):
    wfdb = pytest.importorskip("wfdb")
    source = shared_data / "dialects" / "release2021" / "E07500.hea"  # no date: wfdb reads it
    leads = ("V2", "I", "aVR")
    reduce_record(source, tmp_path, leads)
    full = wfdb.rdrecord(str(source.with_suffix("")), physical=False)
    copy = wfdb.rdrecord(str(tmp_path / "E07500"), physical=False)
    assert copy.sig_name == list(leads) and copy.n_sig == 3
    rows = [full.sig_name.index(lead) for lead in leads]
    np.testing.assert_array_equal(copy.d_signal, full.d_signal[:, rows])
    assert copy.checksum == [full.checksum[r] for r in rows]


def test_a_missing_lead_names_the_record_and_the_lead(shared_data, tmp_path):
    two = reduce_record(shared_data / "challenge" / "A0002.hea", tmp_path / "two", ("I", "II"))
    with pytest.raises(RecordError, match=r"record A0002: has no lead 'V2'.*leads: I, II"):
        reduce_record(two, tmp_path / "three", LEAD_SETS["3"])
    with pytest.raises(ValueError, match="overwrite the source"):
        reduce_record(two, tmp_path / "two", ("I",))


def test_command_line_copies_the_folder_and_names_the_broken_record(shared_data, tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    for name in ("A0002", "E00015"):
        for ext in (".hea", ".mat"):
            shutil.copy(shared_data / "challenge" / f"{name}{ext}", source / f"{name}{ext}")
    (source / "BROKEN.hea").write_text("BROKEN 12 500 5000\n")  # no signal lines, no .mat
    assert main([str(source), str(tmp_path / "out"), "--leads", "3"]) == 1
    captured = capsys.readouterr()
    assert "record BROKEN" in captured.err and "2 of 3 records" in captured.out
    for name in ("A0002", "E00015"):
        assert load_record(tmp_path / "out" / f"{name}.hea").leads == ("I", "II", "V2")
    assert not (tmp_path / "out" / "BROKEN.hea").exists()
    assert main([str(source), str(tmp_path / "x"), "--leads", "I,I"]) == 2


def test_line_ends_and_stray_bytes_of_the_header_are_kept(shared_data, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(shared_data / "challenge" / "A0002.mat", source / "A0002.mat")
    raw = (shared_data / "challenge" / "A0002.hea").read_bytes().replace(b"\n", b"\r\n")
    raw = raw.replace(b"#Sex: ", b"#Sex: \xe4 ")  # a byte that is not UTF-8, in a comment
    (source / "A0002.hea").write_bytes(raw)
    copy = reduce_record(source / "A0002.hea", tmp_path / "out", ("II",))
    data = copy.read_bytes()
    assert data.count(b"\r\n") == raw.count(b"\r\n") - 11  # eleven signal lines fewer
    src_comments = [line for line in raw.split(b"\r\n") if line.startswith(b"#")]
    assert [line for line in data.split(b"\r\n") if line.startswith(b"#")] == src_comments
    assert load_record(copy).leads == ("II",)
