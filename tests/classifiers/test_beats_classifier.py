"""The beats classifier on real records: errors, evidence, scores, save/load without pickle."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from team_code.classifiers import registry
from team_code.classifiers.base import Evidence, coerce_option
from team_code.classifiers.beats import EVIDENCE_NAMES, BeatsClassifier
from team_code.context import RunContext, Task
from team_code.data.records import RecordSet

# Records of /work/shared/data/challenge chosen to hold PVC (164884008/427172004), PAC
# (284470004), MI (164865005) and sinus-rhythm-only records (see challenge/MANIFEST.csv).
SUBSET = (
    "A0002", "A0016", "A0020", "A0029", "A0030", "A0037", "A0059", "A0073", "E00001",
    "E00003", "HR00005", "HR00009", "A0005", "A0012", "A0024", "A0031", "A0050", "A0047",
    "A0049", "A0055", "HR00008", "Q0001", "Q0010", "S0004",
)  # fmt: skip


@pytest.fixture(scope="module")
def records(challenge_dir):
    return RecordSet([challenge_dir / f"{name}.hea" for name in SUBSET])


@pytest.fixture(scope="module")
def fitted(records, shared_data, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    # two MIT-BIH records (N, S, V, F, Q beats) linked into a folder keep the fit short
    mitdb_dir = tmp_path_factory.mktemp("mitdb")
    for name in ("106", "208"):
        for ext in ("hea", "dat", "atr"):
            (mitdb_dir / f"{name}.{ext}").symlink_to(shared_data / "mitdb" / f"{name}.{ext}")
    config = dataclasses.replace(
        BeatsClassifier.quick_config(),
        beat_data=(str(mitdb_dir),),
        max_beats=1000,
        mi_epochs=1,
    )
    return BeatsClassifier(config).fit(records, Task(), RunContext(device="cpu"))


def test_registered():
    assert registry.get("beats") is BeatsClassifier


def test_fit_without_beat_data_says_what_is_needed(records):
    with pytest.raises(ValueError, match="--beat-data"):
        BeatsClassifier(BeatsClassifier.Config()).fit(records, Task())


def test_beat_data_option_takes_a_comma_list():
    value = coerce_option(BeatsClassifier.Config, "beat_data", "/a/mitdb,/b/ptbdb")
    assert value == ("/a/mitdb", "/b/ptbdb")


def test_stack_features_and_scores(fitted, records):
    evidence = fitted.stack_features(records)
    assert evidence.shape == (len(SUBSET), len(EVIDENCE_NAMES))
    assert fitted.stack_feature_names_ == EVIDENCE_NAMES
    col = {n: i for i, n in enumerate(EVIDENCE_NAMES)}
    # 10-s records at 50-150 bpm have 8-25 beats; the fractions of classes sum to 1
    a0002 = evidence[0]
    assert 8 <= a0002[col["n_beats"]] <= 25
    assert 40 < a0002[col["heart_rate_bpm"]] < 160
    fractions = evidence[:, [col[f"frac_{c}"] for c in "NSVFQ"]]
    assert np.allclose(fractions.sum(axis=1), 1)
    assert np.all((evidence[:, col["mean_mi_prob"]] >= 0) & (evidence[:, col["mean_mi_prob"]] <= 1))
    scores = fitted.predict_proba(records)
    assert scores.shape == (len(SUBSET), 24)
    assert np.all((scores >= 0) & (scores <= 1))
    assert fitted.predict(records).shape == scores.shape


def test_save_load_round_trip_without_pickle(fitted, records, tmp_path):
    fitted.save(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["beat_model.safetensors", "beats.json", "config.json", "mi_model.safetensors"]
    meta = json.loads((tmp_path / "config.json").read_text())
    assert meta["classifier"] == "beats"
    again = BeatsClassifier.load(tmp_path)
    assert again.config == fitted.config
    assert np.array_equal(again.thresholds_, fitted.thresholds_)
    few = records.subset([0, 12, 17])
    assert np.allclose(again.predict_proba(few), fitted.predict_proba(few), atol=1e-6)
    # a model fitted on another definition of the evidence is refused, not run
    state = json.loads((tmp_path / "beats.json").read_text())
    del state["evidence_version"]  # as saved before the heart rate's definition changed
    (tmp_path / "beats.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match=r"definition 1.*train the model again"):
        BeatsClassifier.load(tmp_path)


def _without_beats(record):
    """The record made flat (a valid record): no beats in lead II nor anywhere."""
    flat = np.zeros_like(record.signal)
    return dataclasses.replace(record, name=record.name + "_flat", signal=flat)


def test_a_record_without_beats_has_finite_neutral_evidence(fitted, records):
    from team_code.classifiers.beats import NEUTRAL_MI_PROB

    evidence = fitted.stack_features([records[0], _without_beats(records[0])])
    assert np.isfinite(evidence).all()
    col = {n: i for i, n in enumerate(EVIDENCE_NAMES)}
    assert evidence[1, col["n_beats"]] == 0 and evidence[1, col["frac_V"]] == 0
    assert evidence[1, col["mean_mi_prob"]] == NEUTRAL_MI_PROB
    assert evidence[0, col["mean_mi_prob"]] != NEUTRAL_MI_PROB  # the MI model's mean


def test_a_hybrid_with_beats_trains_and_predicts_a_record_without_beats(
    records, shared_data, tmp_path, capsys
):
    from team_code.classifiers.hybrid import HybridClassifier, HybridConfig

    mitdb_dir = tmp_path / "mitdb"
    mitdb_dir.mkdir()
    for ext in ("hea", "dat", "atr"):
        (mitdb_dir / f"208.{ext}").symlink_to(shared_data / "mitdb" / f"208.{ext}")
    beats = {"beat_data": [str(mitdb_dir)], "max_beats": 300, "mi_epochs": 1}
    beats = {**dataclasses.asdict(BeatsClassifier.quick_config()), **beats}
    config = HybridConfig(
        members=("prevalence", "beats"),
        n_folds=2,
        fusion="stacking",
        member_options={"beats": beats},
    )
    training = [records[i] for i in range(len(records))] + [_without_beats(records[0])]
    model = HybridClassifier(config).fit(training, Task())
    assert "cannot process" not in capsys.readouterr().err  # the flat record's evidence is used
    scores = model.predict_proba(training[-2:])
    assert np.isfinite(scores).all() and scores.shape == (2, 24)


def test_report_evidence_keeps_the_base_contract_so_an_ensemble_can_gather_it(fitted, records):
    """The per-record report asks every member for one Evidence per record (the hybrid gathers
    them); the beat features are the stacking's, under another name."""
    few = records.subset([0, 1])
    shown = fitted.evidence(few)
    assert len(shown) == 2 and all(isinstance(e, Evidence) for e in shown)
    gathered = Evidence.gather({"beats": shown}, 2, len(fitted.classes_))
    assert len(gathered) == 2


def test_heart_rate_evidence_of_an_alternating_rhythm_is_that_of_all_its_beats():
    """Bigeminy, RR 0.6 s and 1.4 s alternating (mean 1.0 s): 60 beats/min, as the rules
    read it (``rhythm.rr_statistics``); 60 / the median RR gave 100 or 43 by one interval
    more of either kind."""
    from team_code.classifiers.beats import _summarise

    fs = 500.0
    col = {name: i for i, name in enumerate(EVIDENCE_NAMES)}
    for first in (0.6, 1.4):
        for extra, tol in (([], 0.01), ([first], 3.0)):  # 10 intervals; 11, 6 of one kind
            rr = np.array([first, 2.0 - first] * 5 + extra)
            r_all = np.round(np.concatenate([[0.0], np.cumsum(rr)]) * fs)
            row = _summarise(np.zeros((0, 5)), np.zeros(0), r_all, fs)
            assert row[col["heart_rate_bpm"]] == pytest.approx(60.0, abs=tol), (first, extra)
            assert row[col["hr_outside_60_100"]] <= tol
