"""Shared fixtures: the real data folder, and a switch that turns its absence into a failure.

Real data is read in place from ``$ECG_KIT_DATA`` or ``<repo>/../shared/data``. Where it is
missing, tests that need it skip with the reason; with ``ECG_KIT_REQUIRE_DATA=1`` (set by
``.ci/run``) they fail instead, so a CI run cannot pass by skipping them.
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


@pytest.fixture
def one_thread():
    """One torch intra-op thread for the test (the CI machine has two cores), then restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
