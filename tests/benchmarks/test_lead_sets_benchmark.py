"""benchmarks/lead_sets.py and benchmarks/engine_loso.py: leave one source out, where a
recording released under two sources' names (A0101 = Q0048 in the Challenge data) never trains
a model that scores either copy."""

from __future__ import annotations

import shutil

import numpy as np

from benchmarks import engine_loso, lead_sets
from team_code.classifiers.prevalence import PrevalenceClassifier
from team_code.data.synth import generate_dataset


def _three_sources_with_a_twin(tmp_path) -> list[str]:
    """Records of sources A, E and Q, 4 each, and A00001 released again as Q09999 (the same
    signal file bytes under another name); the benchmarks' --data options."""
    for k, prefix in enumerate(("A", "E", "Q")):
        generate_dataset(tmp_path / prefix, 4, seed=700 + k, prefix=prefix, duration_s=4)
    for suffix in (".hea", ".mat"):
        shutil.copy(tmp_path / "A" / f"A00001{suffix}", tmp_path / "Q" / f"Q09999{suffix}")
    header = tmp_path / "Q" / "Q09999.hea"
    header.write_text(header.read_text().replace("A00001", "Q09999"))
    return [f"--data={tmp_path / p}" for p in ("A", "E", "Q")]


def _spy_on_training(monkeypatch) -> list[set[str]]:
    """The record names of every prevalence fit, in order."""
    trained_on: list[set[str]] = []
    fit = PrevalenceClassifier.fit

    def spy(self, records, task, ctx=None):
        trained_on.append(set(records.names))
        return fit(self, records, task, ctx)

    monkeypatch.setattr(PrevalenceClassifier, "fit", spy)
    return trained_on


def _twin_never_trains_against_itself(trained_on: list[set[str]]) -> None:
    held_out_a = [names for names in trained_on if not any(n.startswith("A") for n in names)]
    held_out_q = [names for names in trained_on if not any(n.startswith("Q") for n in names)]
    assert held_out_a and held_out_q
    assert all("Q09999" not in names for names in held_out_a)  # its twin A00001 is tested
    assert all("A00001" not in names for names in held_out_q)


def test_lead_sets_never_trains_on_the_twin_of_a_record_it_scores(tmp_path, monkeypatch):
    data = _three_sources_with_a_twin(tmp_path)
    trained_on = _spy_on_training(monkeypatch)
    out = tmp_path / "predictions.npz"
    status = lead_sets.main(
        [*data, "--leads", "2", "--classifiers", "prevalence", "--bootstrap", "10",
         "--predictions", str(out)]
    )  # fmt: skip
    assert status == 0
    _twin_never_trains_against_itself(trained_on)
    saved = np.load(out)
    assert len(saved["names"]) == 13 and saved["2/prevalence"].shape[0] == 13


def test_engine_loso_never_trains_on_the_twin_of_a_record_it_scores(tmp_path, monkeypatch, capsys):
    data = _three_sources_with_a_twin(tmp_path)
    trained_on = _spy_on_training(monkeypatch)
    assert engine_loso.main(["--classifier", "prevalence", *data]) == 0
    _twin_never_trains_against_itself(trained_on)
    assert "pooled" in capsys.readouterr().out
