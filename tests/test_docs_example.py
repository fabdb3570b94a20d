"""docs/adding-a-classifier.md: its code, as written there, adds a classifier that trains,
saves, loads, passes the registry contract and runs through the harness, on synthetic records
(no real data needed)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from team_code.classifiers import registry
from team_code.classifiers.base import RUN_OPTIONS
from team_code.context import RunContext, Task
from team_code.data.records import STANDARD_LEADS, Record, RecordSet
from team_code.data.synth import AF, SB, STACH, generate_dataset

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-classifier.md"
NAME = "heart_rate"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


@pytest.fixture(scope="module")
def family():
    """The page's classifier, executed from the page and registered as a plug-in."""
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 1, "the page's code is one python block"
    module = types.ModuleType("heart_rate_doc_example")
    module.__file__ = str(DOC)
    sys.modules[module.__name__] = module  # dataclasses and type hints look the module up
    exec(compile(blocks[0], str(DOC), "exec"), module.__dict__)
    cls = module.HeartRateClassifier
    registry.register(NAME)(cls)
    yield cls
    registry._REGISTERED.pop(NAME, None)
    sys.modules.pop(module.__name__, None)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """60 training and 30 unseen synthetic records with planted rhythms."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root / "train", n_records=60, seed=1)
    generate_dataset(root / "test", n_records=30, seed=2, prefix="TST")
    return root, RecordSet.from_folder(root / "train"), RecordSet.from_folder(root / "test")


def test_the_page_names_what_the_code_defines(family):
    text = DOC.read_text(encoding="utf-8")
    assert f'"{NAME}": "team_code.classifiers.{NAME}:HeartRateClassifier"' in text
    assert family.name == NAME and registry.get(NAME) is family
    assert NAME in registry.available()
    fields = {f.name for f in dataclasses.fields(family.Config)}
    assert fields == {"c", "analysis_s", "min_positives"}
    assert not fields & set(RUN_OPTIONS)


def test_the_example_passes_the_registry_contract(family, synthetic, tmp_path):
    _, train, test = synthetic
    task = Task()
    model = registry.create(NAME)
    assert model.fit(train, task) is model
    n_classes = len(task.classes)
    assert model.classes_ == tuple(task.classes) and model.thresholds_.shape == (n_classes,)

    scores = model.predict_proba(test)
    assert scores.shape == (len(test), n_classes)
    assert np.all(np.isfinite(scores)) and scores.min() >= 0 and scores.max() <= 1
    np.testing.assert_array_equal(model.predict(test), scores >= model.thresholds_)

    model.save(tmp_path / NAME)
    files = [p for p in (tmp_path / NAME).rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".json" for p in files), files
    loaded = registry.get(NAME).load(tmp_path / NAME)
    np.testing.assert_allclose(loaded.predict_proba(test), scores, rtol=1e-9)
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)

    # Unusual but valid records: flat, three minutes at 257 Hz, leads in another order.
    real = test[0]
    flat = Record("FLAT", np.zeros((12, 5000), np.float32), 500.0, STANDARD_LEADS)
    long = Record("LONG", np.tile(real.signal, (1, 18))[:, : 257 * 180], 257.0, real.leads)
    order = list(reversed(range(12)))
    shuffled = dataclasses.replace(
        real, name="SHUFFLED", signal=real.signal[order], leads=tuple(real.leads[i] for i in order)
    )
    unusual = loaded.predict_proba([flat, long, shuffled])
    assert np.all(np.isfinite(unusual)) and unusual.min() >= 0 and unusual.max() <= 1
    np.testing.assert_allclose(unusual[2], loaded.predict_proba([real])[0], rtol=1e-4, atol=1e-6)

    # It learns the rhythms it reads: planted SB, STach and AF rank above the other records.
    truth = model.label_matrix(test)
    for code in (SB, STACH, AF):
        j = model.classes_.index(code)
        positive, negative = scores[truth[:, j] > 0, j], scores[truth[:, j] == 0, j]
        assert len(positive) and positive.min() > np.median(negative), code


def test_the_example_refuses_a_planted_pickle(family, synthetic, tmp_path):
    _, train, _ = synthetic
    model = registry.create(NAME).fit(train, Task())
    model.save(tmp_path / NAME)
    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / NAME / "heart_rate.json").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; execution will not
        registry.get(NAME).load(tmp_path / NAME)
    assert not marker.exists()


def test_the_example_on_the_2021_table_and_two_leads_saves_only_the_model(
    family, synthetic, tmp_path
):
    _, train, test = synthetic
    task = Task("2021", ("I", "II"))
    ctx = RunContext(cache_dir=str(tmp_path / "cache"), workdir=str(tmp_path / "work"))
    model = registry.create(NAME).fit(train, task, ctx)
    assert len(model.classes_) == 26
    model.save(tmp_path / "model")
    saved = (tmp_path / "model" / "config.json").read_text()
    assert str(tmp_path / "cache") not in saved and str(tmp_path / "work") not in saved
    assert Task.from_json(json.loads(saved)["task"]) == task
    real = test[0]
    two = dataclasses.replace(real, signal=real.select_leads(("II", "I")), leads=("II", "I"))
    scores = registry.get(NAME).load(tmp_path / "model").predict_proba([two])
    assert scores.shape == (1, 26) and np.all(np.isfinite(scores))


def test_the_example_trains_and_runs_through_the_harness(family, synthetic, tmp_path):
    """Alone with an option set as on the command line, and as a member of the hybrid."""
    from team_code import harness

    root, _, test = synthetic
    options = {
        NAME: {"c": "0.5"},
        "hybrid": {"members": f"rules,{NAME}", "n_folds": "2"},
        "rules": {"tune": "false", "decision": "half", "decision_policy": "thresholds"},
    }
    manifest = harness.train(
        root / "train",
        tmp_path / "model",
        [NAME, "hybrid"],
        options,
        log=lambda message: None,
        progress=False,
    )
    assert manifest["classifiers"]["hybrid"]["members"] == ["rules", NAME]
    assert harness.load_model(tmp_path / "model", NAME).config.c == 0.5
    result = harness.run(tmp_path / "model", root / "test", tmp_path / "out", NAME, progress=False)
    assert len(result.written) == len(test) and not result.failures


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found, in_code = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.add(_slug(line.lstrip("#")))
    return found


def test_readme_is_a_front_door_whose_links_to_the_docs_resolve():
    root = DOC.parents[1]
    readme = root / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 300
    for page in [readme, *sorted((root / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path, _, anchor = link.partition("#")
            if link.startswith("http") or not anchor:
                continue
            target = (page.parent / path).resolve() if path else page
            assert anchor in _anchors(target), f"{page.name}: {link}"
