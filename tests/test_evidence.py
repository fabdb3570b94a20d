"""What a model shows of how it scored a record goes through one interface,
``Classifier.evidence``, and the report of records a run classified never classifies them
again (synthetic records; no shared data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from team_code import report
from team_code.classifiers.base import Classifier, Evidence
from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier
from team_code.classifiers.hybrid import HybridClassifier
from team_code.classifiers.rules import RulesClassifier
from team_code.context import IN_MEMORY, Task
from team_code.data.outputs import write_output
from team_code.data.records import find_records, load_record
from team_code.data.synth import generate_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("evidence")


@pytest.fixture(scope="module")
def records(folder):
    generate_dataset(folder / "data", n_records=3, seed=5)
    return [load_record(p) for p in find_records(folder / "data")]


@pytest.fixture(scope="module")
def rules(records):
    return RulesClassifier(RulesClassifier.quick_config()).fit(records, Task(), IN_MEMORY)


def _not_again(*args, **kwargs):
    raise AssertionError("classified again")


def test_a_family_without_evidence_gives_an_empty_one_per_record(records):
    shown = Classifier().evidence(records)
    assert shown == [Evidence() for _ in records]


def test_the_rules_evidence_is_their_account_and_the_scores_they_give(records, rules):
    shown = rules.evidence(records)
    scores = rules.predict_proba(records)
    for i, (record, part) in enumerate(zip(records, shown, strict=True)):
        assert part.rules == rules.explain(record)
        np.testing.assert_array_equal(part.scores, scores[i])
        assert part.members == {} and part.scalogram is None


def test_cwt_googlenet_gives_its_scalogram_settings_without_its_network(records, monkeypatch):
    model = CWTGoogLeNetClassifier(CWTGoogLeNetClassifier.quick_config())
    monkeypatch.setattr(model, "predict_proba", _not_again)
    assert [e.scalogram for e in model.evidence(records)] == [model.config] * len(records)


def _hybrid(rules, monkeypatch) -> HybridClassifier:
    """A hybrid over the rules and a cwt_googlenet member, neither of which may classify."""
    cwt = CWTGoogLeNetClassifier(CWTGoogLeNetClassifier.quick_config())
    cwt.classes_ = rules.classes_
    hybrid = HybridClassifier()
    hybrid.task_, hybrid.classes_ = rules.task_, rules.classes_
    hybrid.thresholds_ = np.full(len(rules.classes_), 0.5)
    hybrid.members_ = {"rules": rules, "cwt_googlenet": cwt}
    for model in (hybrid, rules, cwt):
        monkeypatch.setattr(model, "predict_proba", _not_again)
    return hybrid


def test_the_hybrid_gathers_its_members_evidence(records, rules, monkeypatch):
    expected = rules.evidence(records)
    hybrid = _hybrid(rules, monkeypatch)
    shown = hybrid.evidence(records)
    for part, own in zip(shown, expected, strict=True):
        assert part.rules == own.rules
        assert part.scalogram is hybrid.members_["cwt_googlenet"].config
        assert list(part.members) == ["rules"]  # the network's scores need a classification
        np.testing.assert_array_equal(part.members["rules"], own.scores)


def test_gather_refuses_a_member_that_skipped_a_record():
    with pytest.raises(ValueError, match="rules gave evidence for 1 of 2 records"):
        Evidence.gather({"rules": [Evidence()]}, 2, 3)


def test_the_report_of_a_run_shows_the_written_scores_and_classifies_nothing(
    folder, records, rules, monkeypatch
):
    rule_scores = rules.predict_proba(records)
    hybrid = _hybrid(rules, monkeypatch)
    outputs = folder / "outputs"
    written = np.linspace(0.1, 0.9, len(hybrid.classes_))
    for record in records:
        write_output(
            outputs / f"{record.name}.csv", record.name, hybrid.classes_, written > 0.5, written
        )
    drawn = []
    render = report.render_record

    def spy(record, scores_row, *args, **kwargs):
        drawn.append((record.name, np.asarray(scores_row), kwargs))
        return render(record, scores_row, *args, **kwargs)

    monkeypatch.setattr(report, "render_record", spy)
    paths = {p.stem: p for p in find_records(folder / "data")}
    index = report._model_report(hybrid, paths, list(paths), outputs, folder / "report", log=None)
    assert [name for name, _, _ in drawn] == [r.name for r in records]
    for i, (_, scores_row, kwargs) in enumerate(drawn):
        np.testing.assert_allclose(scores_row, written, atol=1e-6)  # the written scores
        assert kwargs["explanation"]["rules"] and not kwargs["explain_error"]
        np.testing.assert_array_equal(kwargs["member_rows"]["rules"], rule_scores[i])
        assert kwargs["cwt_config"] is hybrid.members_["cwt_googlenet"].config
    rows = json.loads((index.parent / "report.json").read_text())["records"]
    assert all(r["panels"]["rules"] == "ok" and r["panels"]["scores"] == "ok" for r in rows)
