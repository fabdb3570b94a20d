"""The benchmarks' record pool (``benchmarks.challenge.load_pool``): folders without a record
are refused by name, not benchmarked as zero records."""

from __future__ import annotations

import pytest

from benchmarks.challenge import load_pool


def test_folders_without_records_are_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no records here")
    with pytest.raises(FileNotFoundError, match=r"no records \(\.hea headers\) in .*empty"):
        load_pool([empty])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_pool([tmp_path / "missing"])


def test_an_empty_folder_beside_full_ones_is_named(shared_data, tmp_path):
    typo = tmp_path / "ludb_challange"
    typo.mkdir()
    with pytest.raises(FileNotFoundError, match="ludb_challange") as error:
        load_pool([shared_data / "challenge", typo])
    assert "challenge," not in str(error.value)  # the folder with records is not named


def test_the_records_of_several_folders_are_pooled(shared_data):
    pool = load_pool([shared_data / "challenge", shared_data / "ludb_challenge"])
    assert len(pool) == 331
    assert pool.names[0].startswith("A") and pool.names[-1].startswith("LU")
