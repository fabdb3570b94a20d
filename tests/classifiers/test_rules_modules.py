"""The rules in three modules: the rule language, the rule book and the learner.

The book is read on its own (no learning code, no measuring code); the learner's module
still offers every name other modules import from it; evaluating the book through the
learner's module scores exactly as applying each rule of the book directly does.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from team_code.classifiers import rule_language, rulebook, rules
from team_code.data import synth
from team_code.data.labels import scored_classes
from team_code.data.records import Record


def _imports(module) -> set[str]:
    """The modules a source file imports (``from x import y`` gives ``x``)."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return found


def test_the_language_imports_nothing_of_the_kit():
    assert not {m for m in _imports(rule_language) if m.startswith(("team_code", "numpy"))}


def test_the_book_imports_only_the_language_and_the_scoring_tables():
    kit = {m for m in _imports(rulebook) if m.startswith("team_code")}
    assert kit == {"team_code.classifiers.rule_language", "team_code.data.labels"}


def test_the_learner_module_offers_every_name_it_offered_before():
    for name in ("Threshold", "Rule"):
        assert getattr(rules, name) is getattr(rule_language, name)
    for name in ("RULES", "rule_for_class", "evaluate_rules", "default_thresholds", "class_codes"):
        assert getattr(rules, name) is getattr(rulebook, name)
    for name in rules.__all__:
        assert hasattr(rules, name), name


def test_every_entry_of_the_book_states_its_criterion_thresholds_bounds_and_sources():
    scored = scored_classes()
    assert all(rulebook.rule_for_class(c, scored) is not None for c in scored.codes)
    book = rulebook.rule_table()
    for code, rule in book.items():
        assert rule.code == code and rule.criterion and rule.abbreviation
        assert rule.primary in rule.thresholds, rule.abbreviation
        for name, t in rule.thresholds.items():
            assert isinstance(t, rule_language.Threshold), (rule.abbreviation, name)
            assert t.lo <= t.value <= t.hi and t.scale > 0 and t.source, (rule.abbreviation, name)


@pytest.fixture(scope="module")
def measured() -> dict:
    spec = synth.RecordSpec(noise=synth.NoiseSpec(white_mv=0.01, baseline_mv=0.05))
    x, _ = synth.synthesize(spec, 500, 10, seed=3)
    record = Record("syn", x, 500.0, synth.LEADS, 60, "Female", spec.labels())
    model = rules.RulesClassifier(rules.RulesClassifier.quick_config())
    return model.measure(record)["values"]


def test_evaluating_through_the_learner_module_equals_applying_each_rule_of_the_book(measured):
    thresholds = rulebook.default_thresholds()
    thresholds["164889003"] = dict(thresholds["164889003"], af_irregularity=0.05)  # AF moved
    through = rules.evaluate_rules(measured, thresholds)
    book = rulebook.rule_table()
    assert set(through) == set(book)
    for code, rule in book.items():
        direct = rule_language.score_rule(rule, measured, thresholds[code])
        assert through[code] == direct, rule.abbreviation
        assert 0.0 <= direct["score"] <= 1.0
    fired = [c for c, r in through.items() if r["score"] >= 0.5]
    assert "426783006" in fired  # the synthetic record is in sinus rhythm at 60-100/min
