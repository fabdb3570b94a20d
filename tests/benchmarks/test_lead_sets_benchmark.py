"""benchmarks/lead_sets.py: leave one source out per lead set, where a recording released under
two sources' names (A0101 = Q0048 in the Challenge data) never trains a model that scores
either copy."""

from __future__ import annotations

import shutil

import numpy as np

from benchmarks import lead_sets
from team_code.classifiers.prevalence import PrevalenceClassifier
from team_code.data.synth import generate_dataset


def test_a_twin_under_another_source_never_trains_the_model_that_scores_it(tmp_path, monkeypatch):
    for k, prefix in enumerate(("A", "E", "Q")):
        generate_dataset(tmp_path / prefix, 4, seed=700 + k, prefix=prefix, duration_s=4)
    # A00001 released again as Q09999: the same signal file bytes under another name
    for suffix in (".hea", ".mat"):
        shutil.copy(tmp_path / "A" / f"A00001{suffix}", tmp_path / "Q" / f"Q09999{suffix}")
    header = tmp_path / "Q" / "Q09999.hea"
    header.write_text(header.read_text().replace("A00001", "Q09999"))
    trained_on: list[set[str]] = []
    fit = PrevalenceClassifier.fit

    def spy(self, records, task, ctx=None):
        trained_on.append(set(records.names))
        return fit(self, records, task, ctx)

    monkeypatch.setattr(PrevalenceClassifier, "fit", spy)
    out = tmp_path / "predictions.npz"
    status = lead_sets.main(
        [*(f"--data={tmp_path / p}" for p in ("A", "E", "Q")), "--leads", "2",
         "--classifiers", "prevalence", "--bootstrap", "10", "--predictions", str(out)]
    )  # fmt: skip
    assert status == 0
    held_out_a = [names for names in trained_on if not any(n.startswith("A") for n in names)]
    held_out_q = [names for names in trained_on if not any(n.startswith("Q") for n in names)]
    assert held_out_a and held_out_q
    assert all("Q09999" not in names for names in held_out_a)  # its twin A00001 is tested
    assert all("A00001" not in names for names in held_out_q)
    saved = np.load(out)
    assert len(saved["names"]) == 13 and saved["2/prevalence"].shape[0] == 13
