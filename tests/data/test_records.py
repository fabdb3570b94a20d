"""The record reader on every real record, every header dialect and every broken input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.io import savemat

from team_code.data.records import (
    STANDARD_LEADS,
    RecordError,
    RecordSet,
    find_records,
    load_record,
    parse_dx,
    read_header,
)

# -------------------------------------------------------------------------------------------
# Real data


def _manifest(challenge_dir):
    with open(challenge_dir / "MANIFEST.csv", newline="") as handle:
        return {row["record"]: row for row in csv.DictReader(handle)}


def test_every_challenge_record_loads_and_matches_the_manifest(challenge_dir):
    manifest = _manifest(challenge_dir)
    paths = find_records(challenge_dir)
    assert len(paths) == 231 == len(manifest)
    for path in paths:
        record = load_record(path)
        row = manifest[record.name]
        assert record.signal.dtype == np.float32
        assert record.signal.shape == (12, int(row["n_samples"]))
        assert record.fs == float(row["fs_hz"])
        assert record.leads == STANDARD_LEADS
        assert set(record.labels) == {c for c in row["dx_snomed"].split(";") if c}
        if row["sex"] in ("Male", "Female"):
            assert record.sex == row["sex"]
        if row["age"] not in ("", "NaN", "Unknown"):
            assert record.age == pytest.approx(float(row["age"]))
        # Physiological amplitudes: a conversion error (gain, baseline) would show here.
        assert 0.05 < np.percentile(np.abs(record.signal), 99) < 20


def test_release2021_copies_read_identically(shared_data):
    dialects = shared_data / "dialects" / "release2021"
    names = [p.stem for p in find_records(dialects)]
    assert names == ["E07500", "E07501", "E07502", "HR06000", "HR06001"]
    for name in names:
        new = load_record(dialects / name)
        old = load_record(shared_data / "challenge" / name)
        np.testing.assert_array_equal(new.signal, old.signal)
        assert (new.fs, new.leads, new.labels, new.age, new.sex) == (
            old.fs,
            old.leads,
            old.labels,
            old.age,
            old.sex,
        )


def test_georgia_duplicate_code_and_4880_gain(challenge_dir):
    record = load_record(challenge_dir / "E00015.hea")
    # The header lists 284470004 twice; gain 4880/mV.
    assert record.labels.count("284470004") == 1
    header = read_header(challenge_dir / "E00015.hea")
    assert header.gains[0] == 4880.0
    assert header.signal_file == "E00015.mat"


def test_lazy_record_set(challenge_dir):
    records = RecordSet.from_folder(challenge_dir)
    assert len(records) == 231
    assert records.names[0] == "A0002"
    assert records.labels[0] == ("426783006",)
    assert records[0].name == "A0002"
    subset = records.subset([3, 5])
    assert [r.name for r in subset] == [records.names[3], records.names[5]]


# -------------------------------------------------------------------------------------------
# Dialects, on records made here


def _write(folder, name, header_lines, val, mat_name=None):
    savemat(folder / (mat_name or f"{name}.mat"), {"val": val}, format="4")
    (folder / f"{name}.hea").write_text("\n".join(header_lines) + "\n")
    return folder / f"{name}.hea"


def _val(n_leads=3, n=500, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-2000, 2000, size=(n_leads, n)).astype(np.int16)


@pytest.mark.parametrize(
    "record_line, signal_fmt, dx_line",
    [
        ("R1 3 500 500 05-Feb-2020 11:39:16", "R1.mat 16+24 {gain}/mV 16 0 0 0 0 {lead}", "#Dx: 1"),
        (
            "R1.mat 3 500 500 05-May-2020 14:50:55",
            "R1.mat 16+24 {gain}/mV 16 0 0 0 0 {lead}",
            "#Dx: 1",
        ),
        ("R1 3 500 500 04-Jun-2020 15:11:55", "R1.mat 16+24 {gain}/mv 16 0 0 0 0 {lead}", "#Dx: 1"),
        ("R1 3 500 500", "R1.mat 16x1+24 {gain}.0(0)/mV 16 0 0 0 0 {lead}", "# Dx: 1"),
    ],
    ids=["2020", "georgia-file-name", "lower-case-mv", "2021"],
)
def test_header_dialects(tmp_path, record_line, signal_fmt, dx_line):
    val = _val()
    leads = ["V1", "I", "avr"]
    lines = [record_line]
    lines += [signal_fmt.format(gain=1000, lead=lead) for lead in leads]
    lines += ["#Age: 61", "#Sex: Female", dx_line.replace("1", "164889003, 59118001")]
    record = load_record(_write(tmp_path, "R1", lines, val))
    assert record.fs == 500.0
    assert record.leads == ("V1", "I", "aVR")
    assert record.labels == ("164889003", "59118001")
    assert (record.age, record.sex) == (61.0, "Female")
    np.testing.assert_allclose(record.signal, val / 1000.0, rtol=1e-6)
    # Leads are found by name, in any order.
    np.testing.assert_allclose(record.lead("AVR"), val[2] / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(record.select_leads(["I", "V1"]), val[[1, 0]] / 1000.0, rtol=1e-6)
    with pytest.raises(RecordError, match=r"R1.*no lead 'V6'"):
        record.lead("V6")


def test_gain_baseline_and_units(tmp_path):
    val = _val(n_leads=3)
    lines = [
        "R2 3 257 500",
        "R2.mat 16+24 4880/mV 16 0 0 0 0 I",
        "R2.mat 16+24 200(-100)/mV 16 0 0 0 0 II",
        "R2.mat 16+24 1(0)/uV 16 0 0 0 0 III",
        "#Age: NaN",
        "#Sex: Unknown",
        "#Dx: 426783006,,426783006, ",
    ]
    record = load_record(_write(tmp_path, "R2", lines, val))
    np.testing.assert_allclose(record.signal[0], val[0] / 4880.0, rtol=1e-6)
    np.testing.assert_allclose(record.signal[1], (val[1] + 100) / 200.0, rtol=1e-6)
    np.testing.assert_allclose(record.signal[2], val[2] / 1000.0, rtol=1e-6)  # 1 unit per uV
    assert record.fs == 257.0
    assert record.age is None and record.sex is None
    assert record.labels == ("426783006",)


@pytest.mark.parametrize("fs", [257, 300, 500, 1000])
def test_sampling_frequencies(tmp_path, fs):
    val = _val(n_leads=1, n=fs * 2)
    lines = [f"F {1} {fs} {fs * 2}", "F.mat 16+24 1000/mV 16 0 0 0 0 II", "#Dx: 426783006"]
    record = load_record(_write(tmp_path, "F", lines, val))
    assert record.fs == fs and record.duration_s == pytest.approx(2.0)


def test_non_utf8_comment_and_unknown_age(tmp_path):
    val = _val(n_leads=1)
    _write(tmp_path, "U", ["U 1 500 500", "U.mat 16+24 1000/mV 16 0 0 0 0 II"], val)
    with open(tmp_path / "U.hea", "ab") as handle:
        handle.write(b"#Age: Unknown\n#Sx: caf\xe9 \xff\n#Dx: 426783006\n")
    record = load_record(tmp_path / "U.hea")
    assert record.age is None and record.labels == ("426783006",)


def test_parse_dx():
    assert parse_dx(" 1, 2,,2 ,3,") == ("1", "2", "3")
    assert parse_dx("") == ()


# -------------------------------------------------------------------------------------------
# Broken records: an error that names the record and the problem


GOOD = ["B 2 500 500", "B.mat 16+24 1000/mV 16 0 0 0 0 I", "B.mat 16+24 1000/mV 16 0 0 0 0 II"]


def _broken(tmp_path, lines=GOOD, val=None, mat_name=None):
    return _write(tmp_path, "B", lines, _val(n_leads=2) if val is None else val, mat_name)


def test_missing_mat(tmp_path):
    path = _broken(tmp_path)
    (tmp_path / "B.mat").unlink()
    with pytest.raises(RecordError, match=r"record B: signal file B.mat is missing"):
        load_record(path)


def test_truncated_mat(tmp_path):
    path = _broken(tmp_path)
    data = (tmp_path / "B.mat").read_bytes()
    (tmp_path / "B.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordError, match=r"record B: .*(truncated|samples)"):
        load_record(path)


def test_empty_mat(tmp_path):
    path = _broken(tmp_path)
    (tmp_path / "B.mat").write_bytes(b"")
    with pytest.raises(RecordError, match=r"record B: signal file B.mat is empty"):
        load_record(path)


def test_lead_count_disagrees(tmp_path):
    path = _broken(tmp_path, val=_val(n_leads=3))
    with pytest.raises(RecordError, match=r"record B: signal file has 3 leads but .* declares 2"):
        load_record(path)


def test_header_line_count_disagrees(tmp_path):
    with pytest.raises(RecordError, match=r"record B: header declares 3 signals but has 2"):
        load_record(_broken(tmp_path, lines=["B 3 500 500", *GOOD[1:]]))


@pytest.mark.parametrize("gain, problem", [("0", "must be positive"), ("abc", "not a number")])
def test_bad_gain(tmp_path, gain, problem):
    lines = [GOOD[0], GOOD[1].replace("1000/mV", f"{gain}/mV"), GOOD[2]]
    with pytest.raises(RecordError, match=rf"record B: .*gain.*{problem}"):
        load_record(_broken(tmp_path, lines=lines))


@pytest.mark.parametrize("fs", ["fast", "nan", "0", "1", "1e6"])
def test_bad_fs(tmp_path, fs):
    with pytest.raises(RecordError, match=r"record B: sampling frequency"):
        load_record(_broken(tmp_path, lines=[f"B 2 {fs} 500", *GOOD[1:]]))


def test_nan_and_inf_samples(tmp_path):
    val = _val(n_leads=2).astype(np.float64)
    val[1, 7] = np.nan
    val[0, 3] = np.inf
    with pytest.raises(RecordError, match=r"record B: signal has 2 NaN or infinite samples"):
        load_record(_broken(tmp_path, val=val))


@pytest.mark.parametrize(
    "val, problem",
    [
        # samples already in millivolts under a digital gain: 1000 times too small
        (_val(n_leads=2).astype(np.float64) / 1000.0, "non-integer samples"),
        (_val(n_leads=2).astype(np.complex128), "complex type"),
        (_val(n_leads=2).astype(np.uint16), "unsigned type uint16"),
        # an ADC offset of 1e9 read as 1e6 mV
        (_val(n_leads=2).astype(np.float64) + 1e9, r"reaches 1e\+06 mV"),
    ],
)
def test_samples_that_cannot_be_adc_units_are_refused(tmp_path, val, problem):
    with pytest.raises(RecordError, match=rf"record B: signal .*{problem}"):
        load_record(_broken(tmp_path, val=val))


def test_a_gain_that_overflows_millivolts_is_refused(tmp_path):
    lines = [GOOD[0]] + [line.replace("1000/mV", "1e-310/mV") for line in GOOD[1:]]
    with pytest.raises(RecordError, match=r"record B: signal is not finite in millivolts"):
        load_record(_broken(tmp_path, lines=lines))


@pytest.mark.parametrize(
    "line, lacks", [("B 2", "the sampling frequency"), ("B", "the number of signals and fs")]
)
def test_a_record_line_without_fs_is_refused_saying_what_it_lacks(tmp_path, line, lacks):
    with pytest.raises(RecordError, match=rf"record B: record line '{line}' lacks {lacks}"):
        load_record(_broken(tmp_path, lines=[line, *GOOD[1:]]))


def test_empty_signal(tmp_path):
    lines = ["B 2 500 0", *GOOD[1:]]
    with pytest.raises(RecordError, match=r"record B: signal is empty"):
        load_record(_broken(tmp_path, lines=lines, val=np.zeros((2, 0), np.int16)))


def test_sample_count_disagrees(tmp_path):
    with pytest.raises(RecordError, match=r"record B: header declares 600 samples"):
        load_record(_broken(tmp_path, lines=["B 2 500 600", *GOOD[1:]]))


@pytest.mark.parametrize("name", ["../B.mat", "/etc/B.mat", "sub/B.mat", "..", "C:B.mat"])
def test_signal_file_outside_folder(tmp_path, name):
    lines = [GOOD[0]] + [line.replace("B.mat", name, 1) for line in GOOD[1:]]
    with pytest.raises(RecordError, match=r"record B: signal file name .* outside"):
        load_record(_broken(tmp_path, lines=lines))


def test_empty_header(tmp_path):
    (tmp_path / "E.hea").write_text("# only a comment\n")
    with pytest.raises(RecordError, match=r"record E: header is empty"):
        load_record(tmp_path / "E.hea")


def test_missing_header(tmp_path):
    with pytest.raises(RecordError, match=r"record Z: header .* cannot be read"):
        load_record(tmp_path / "Z")


@pytest.mark.parametrize("second", ["I", "i"])
def test_a_lead_named_twice_is_refused(tmp_path, second):
    lines = [GOOD[0], GOOD[1], GOOD[2].replace(" II", f" {second}")]
    with pytest.raises(RecordError, match=r"record B: header names lead\(s\) I more than once"):
        read_header(_broken(tmp_path, lines=lines))


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("Lead I", "I"),
        ("LEAD_II", "II"),
        ("lead-V1", "V1"),
        ("V6 # chest", "V6"),
        ("V6\ufffd", "V6"),  # a byte of another encoding after the name
        ("II (rhythm)", "II"),
        ("Lead III ", "III"),
        ("-aVR", "-aVR"),  # Cabrera's inverted aVR is not aVR
        ("aVR inverted", "aVR inverted"),
        ("V1-V2", "V1-V2"),
        ("lead1", "lead1"),  # the reader's name for a lead without one
        ("vx", "vx"),
    ],
)
def test_lead_names_with_a_prefix_or_a_comment_are_found(name, canonical):
    from team_code.data.records import canonical_lead

    assert canonical_lead(name) == canonical


def test_a_header_naming_its_leads_lead_i_and_lead_ii_reads_the_standard_leads(tmp_path):
    lines = [GOOD[0], GOOD[1].replace(" I", " Lead I"), GOOD[2].replace(" II", " Lead II")]
    assert load_record(_broken(tmp_path, lines=lines)).leads == ("I", "II")
