"""A custom scoring table (``train_model.py DATA MODEL --task weights.csv``) end to end: every
classifier learns the table's classes with the table's weights, and ``run_model.py`` writes
those classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evaluation import metrics
from team_code import harness
from team_code.classifiers.hybrid import _record_contributions
from team_code.classifiers.thresholds import challenge_score
from team_code.context import Task
from team_code.data.labels import NORMAL_CLASS, scored_classes
from team_code.data.outputs import read_output
from team_code.data.records import RecordSet

# NSR, AF, SB, STach, PAC (2020 classes) and nonspecific ST-T abnormality (428750005), which
# neither shipped table scores.
CLASSES = ("426783006", "164889003", "426177001", "427084000", "284470004", "428750005")
ABBREVIATIONS = ("NSR", "AF", "SB", "STach", "PAC", "NSSTTA")


def write_table(folder: Path, classes=CLASSES, off_diagonal: float = 0.1) -> Path:
    """A ``weights.csv`` of ``classes`` (1 on the diagonal, ``off_diagonal`` elsewhere: not
    the 2020 weights) with its ``dx_mapping_scored.csv`` beside it; returns the weights path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [",".join(["", *classes])]
    for i, code in enumerate(classes):
        cells = ["1.0" if i == j else str(off_diagonal) for j in range(len(classes))]
        rows.append(",".join([code, *cells]))
    (folder / "weights.csv").write_text("\n".join(rows) + "\n")
    mapping = ["Dx,SNOMED CT Code,Abbreviation"]
    abbreviations = dict(zip(CLASSES, ABBREVIATIONS))
    mapping += [f"class {code},{code},{abbreviations.get(code, code)}" for code in classes]
    (folder / "dx_mapping_scored.csv").write_text("\n".join(mapping) + "\n")
    return folder / "weights.csv"


@pytest.mark.parametrize(
    "classes",
    [CLASSES[:5], CLASSES],
    ids=["2020-classes-other-weights", "a-class-no-shipped-table-scores"],
)
def test_the_hybrids_record_contributions_weigh_with_the_tasks_table(tmp_path, classes):
    scored = Task(str(write_table(tmp_path, classes))).scored
    rng = np.random.default_rng(0)
    truth = rng.random((60, len(classes))) < 0.3
    binary = truth ^ (rng.random(truth.shape) < 0.2)
    contributions = _record_contributions(truth, binary, classes, scored)
    # They sum to the normalised metric plus the inactive share, by the custom weights.
    normal = list(classes).index(NORMAL_CLASS)
    _, correct, inactive = metrics.challenge_scores(scored.weights, truth, binary, normal)
    expected = metrics.compute_challenge_metric(scored.weights, truth, binary, classes)
    assert contributions.sum() - inactive / (correct - inactive) == pytest.approx(expected)
    if set(classes) <= set(scored_classes().codes):  # the 2020 weights give another score
        index = [scored_classes().codes.index(c) for c in classes]
        weights_2020 = scored_classes().weights[np.ix_(index, index)]
        other = metrics.compute_challenge_metric(weights_2020, truth, binary, classes)
        assert abs(other - expected) > 0.01


# -------------------------------------------------------------------------------------------
# End to end on real records

EVERY_CLASSIFIER = ("rules", "parallel_cnn", "cwt_googlenet", "beats", "prevalence", "hybrid")


def _options(shared_data: Path) -> dict[str, dict[str, str]]:
    """Every engine at about the size of its quick configuration (a few epochs, so that the
    deep engines learn past their initial loss); the hybrid fuses them all."""
    return {
        "parallel_cnn": {
            "fs_hz": "100", "length": "200", "filters": "8", "n_blocks": "3", "epochs": "3",
            "batch_size": "8", "val_fraction": "0.25",
        },
        "cwt_googlenet": {
            "image_size": "32", "fs_hz": "100", "n_scales": "12", "pretrained_weights": "none",
            "epochs": "3", "lr": "0.001", "batch_size": "8", "n_max": "16", "max_copies": "2",
            "val_fraction": "0.25", "patience": "0",
        },
        "beats": {
            "beat_data": str(shared_data / "mitdb"), "epochs": "1", "max_beats": "1500",
            "mi_epochs": "1",
        },
        "hybrid": {"members": ",".join(EVERY_CLASSIFIER[:-1]), "n_folds": "2"},
    }  # fmt: skip


def _train(challenge_dir, shared_data, root: Path, names, members, n_records: int):
    """``names`` trained for the custom table on ``n_records`` real records of every source
    (the hybrid fusing ``members``); returns (table, data folder, model folder)."""
    table = write_table(root / "table")
    data = root / "data"
    data.mkdir()
    records = RecordSet.from_folder(challenge_dir)
    step = len(records) // n_records
    for name in records.names[::step][:n_records]:
        for suffix in (".hea", ".mat"):
            (data / f"{name}{suffix}").symlink_to(challenge_dir / f"{name}{suffix}")
    options = _options(shared_data)
    options["hybrid"]["members"] = ",".join(members)
    options = {k: v for k, v in options.items() if k in {*names, *members}}
    model = root / "model"
    harness.train(
        data,
        model,
        list(names),
        options,
        log=lambda message: None,
        preset="paper",
        progress=False,
        table=str(table),
        device="cpu",
    )
    return table, data, model


def _check_served(model: Path, data: Path, table: Path, name: str, outputs: Path) -> None:
    """``name`` of ``model`` writes the table's classes, and the outputs' challenge metric by
    the scorer with the table equals team_code's with the model's task."""
    result = harness.run(model, data, outputs, classifier=name, progress=False, device="cpu")
    assert result.failures == []
    for record in result.written:
        assert read_output(outputs / f"{record}.csv").classes == CLASSES
    score = metrics.evaluate_folders(data, outputs, weights_path=table).challenge_metric
    task = harness.load_model(model, name).task_
    assert Path(task.weights_path) == table.resolve()
    records = RecordSet.from_folder(data)
    binary = np.array([read_output(outputs / f"{r}.csv").labels for r in records.names])
    assert challenge_score(
        task.truth(records), binary.astype(bool), CLASSES, task.scored
    ) == pytest.approx(score)


@pytest.fixture(scope="module")
def hybrid_model(challenge_dir, shared_data, tmp_path_factory):
    names = ("rules", "prevalence", "hybrid")
    root = tmp_path_factory.mktemp("custom")
    return _train(challenge_dir, shared_data, root, names, ("rules", "prevalence"), 24)


@pytest.mark.parametrize("name", ["rules", "prevalence", "hybrid"])
def test_the_hybrid_and_its_members_serve_the_custom_tables_classes(hybrid_model, tmp_path, name):
    table, data, model = hybrid_model
    _check_served(model, data, table, name, tmp_path / "out")


@pytest.mark.slow
def test_every_classifier_serves_the_custom_tables_classes(challenge_dir, shared_data, tmp_path):
    table, data, model = _train(
        challenge_dir, shared_data, tmp_path, EVERY_CLASSIFIER, EVERY_CLASSIFIER[:-1], 40
    )
    for name in EVERY_CLASSIFIER:
        _check_served(model, data, table, name, tmp_path / f"out-{name}")
