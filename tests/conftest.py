"""Shared fixtures: the real data folder, and a switch that turns its absence into a failure.

Real data is read in place from ``$ECG_KIT_DATA`` or ``<repo>/../shared/data``. Where it is
missing, tests that need it skip with the reason; with ``ECG_KIT_REQUIRE_DATA=1`` (set by
``.ci/run``) they fail instead, so a CI run cannot pass by skipping them.

Tests that need some Challenge records but no particular ones take ``records_dir``: the real
records where they are, else synthetic records with planted labels, so they run without
``../shared`` (and still on the real records in CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    """Where the real data lives."""
    return Path(os.environ.get("ECG_KIT_DATA", REPO.parent / "shared" / "data")).resolve()


def _need(path: Path) -> Path:
    if path.exists():
        return path
    message = f"real data not found at {path} (set ECG_KIT_DATA)"
    if os.environ.get("ECG_KIT_REQUIRE_DATA") == "1":
        pytest.fail(message + "; ECG_KIT_REQUIRE_DATA=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder (challenge/, mitdb/, ptbdb/, scoring/ ...)."""
    return _need(data_root())


@pytest.fixture(scope="session")
def challenge_dir(shared_data) -> Path:
    """The 231 real Challenge records."""
    return _need(shared_data / "challenge")


@pytest.fixture(scope="session")
def ludb_dir(shared_data) -> Path:
    """The 100 shared LUDB records, with each lead's wave marks."""
    return _need(shared_data / "ludb")


@pytest.fixture(scope="session")
def qtdb_dir(shared_data) -> Path:
    """The 102 shared QT Database records, with the cardiologists' ``.q1c`` marks."""
    return _need(shared_data / "qtdb")


@pytest.fixture(scope="session")
def delineator_weights(ludb_dir, tmp_path_factory) -> Path:
    """The learned delineator's weights built as users build them (its documented command on
    the 100 shared LUDB records, about 2.5 minutes on one thread; they are not kept in git),
    and ``$ECG_KIT_DELINEATOR_WEIGHTS`` naming them for the session."""
    import torch

    from team_code.nn import delineator

    out = tmp_path_factory.mktemp("delineator") / "delineator.safetensors"
    threads = torch.get_num_threads()
    try:
        code = delineator.main(["train", "--ludb", str(ludb_dir), "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert code == 0 and out.is_file()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(delineator.WEIGHTS_ENV, str(out))
        yield out


#: The synthetic stand-in for challenge/: (name prefix, sampling rate in Hz) of each source, so
#: that record_source finds four sources, one of them at INCART's 257 Hz.
SYNTHETIC_SOURCES = (("A", 500), ("E", 500), ("HR", 500), ("I", 257))

#: Synthetic records per source.
SYNTHETIC_PER_SOURCE = 24


def synthetic_records(folder: Path) -> Path:
    """Write the synthetic stand-in for challenge/ into ``folder`` (96 ten-second records,
    ``A00001`` ... ``I00024``, the labels team_code.data.synth plants); returns ``folder``."""
    from team_code.data.synth import generate_dataset

    for seed, (prefix, fs) in enumerate(SYNTHETIC_SOURCES):
        generate_dataset(folder, SYNTHETIC_PER_SOURCE, seed=seed, fs=fs, prefix=prefix)
    return folder


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> Path:
    """Challenge records for tests that need some but no particular ones: the real challenge/
    folder where it is, else :func:`synthetic_records`. With ``ECG_KIT_REQUIRE_DATA=1`` the
    real folder must be there."""
    real = data_root() / "challenge"
    if real.exists() or os.environ.get("ECG_KIT_REQUIRE_DATA") == "1":
        return _need(real)
    return synthetic_records(tmp_path_factory.mktemp("synthetic_challenge"))


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test (the CI machine has two cores), then restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
