"""MIT-BIH reader: AAMI counts of the kit's records against the data README's table."""

from __future__ import annotations

import pytest

from team_code.beats import mitdb

# /work/shared/data/README.md, "mitdb/ (AAMI EC57 classes)" (from the records' .atr files).
README_COUNTS = {
    "100": {"N": 2239, "S": 33, "V": 1},
    "103": {"N": 2082, "S": 2},
    "105": {"N": 2526, "V": 41, "Q": 5},
    "106": {"N": 1507, "V": 520},
    "108": {"N": 1740, "S": 4, "F": 2, "V": 17},
    "208": {"N": 1586, "V": 992, "F": 373, "S": 2, "Q": 2},
}


@pytest.fixture(scope="module")
def mitdb_dir(shared_data):
    return shared_data / "mitdb"


@pytest.mark.parametrize("name", sorted(README_COUNTS))
def test_aami_counts_match_readme(mitdb_dir, name):
    record = mitdb.read_record(mitdb_dir, name)
    assert record.counts() == README_COUNTS[name]
    assert record.lead == "MLII"
    assert record.fs == 360.0
    assert record.signal_mv.shape == (650000,)
    assert record.beat_samples.size == sum(README_COUNTS[name].values())
    assert (record.beat_samples[1:] > record.beat_samples[:-1]).all()


def test_symbol_mapping():
    assert [mitdb.SYMBOL_TO_AAMI[s] for s in "NLRej"] == ["N"] * 5
    assert [mitdb.SYMBOL_TO_AAMI[s] for s in "AaJS"] == ["S"] * 4
    assert [mitdb.SYMBOL_TO_AAMI[s] for s in "VE"] == ["V"] * 2
    assert mitdb.SYMBOL_TO_AAMI["F"] == "F"
    assert [mitdb.SYMBOL_TO_AAMI[s] for s in "/fQ"] == ["Q"] * 3
    assert mitdb.aami_label("+") is None and mitdb.aami_label("~") is None


def test_inter_patient_sets():
    assert len(mitdb.DS1) == len(mitdb.DS2) == 22
    assert not set(mitdb.DS1) & set(mitdb.DS2)
    assert not (set(mitdb.DS1) | set(mitdb.DS2)) & set(mitdb.PACED)
    assert [mitdb.inter_patient_set(n) for n in ("100", "106", "107", "999")] == [
        "DS2",
        "DS1",
        "paced",
        "other",
    ]


def test_database_excludes_paced_unless_asked(mitdb_dir):
    names = mitdb.list_records(mitdb_dir)
    assert names == ["100", "102", "103", "104", "105", "106", "107", "108", "208"]
    # paced record 107 is nearly all Q beats (2078 paced of 2137)
    paced = mitdb.read_record(mitdb_dir, "107")
    assert paced.counts() == {"V": 59, "Q": 2078}
    # 102 has no MLII: the first lead (V5) is used
    assert mitdb.read_record(mitdb_dir, "102").lead == "V5"


def test_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"wfdb\.dl_database"):
        mitdb.list_records(tmp_path)
