"""Evaluation plots: curves agree with the scorer, files are PNGs, degenerate classes work."""

from __future__ import annotations

import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from evaluation import metrics, plots

REPO = Path(__file__).resolve().parents[2]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def synthetic(seed: int = 0, n: int = 120):
    """Labels of 5 classes: 3 ordinary, one without positives, one without negatives."""
    rng = np.random.default_rng(seed)
    labels = rng.uniform(size=(n, 5)) < np.array([0.4, 0.1, 0.25, 0.0, 1.0])
    scores = np.round(np.clip(0.35 * labels + rng.uniform(0, 0.65, labels.shape), 0, 1), 1)
    return labels, scores >= 0.5, scores  # rounding makes many ties


def test_roc_area_equals_scorer_auroc_with_ties():
    labels, _, scores = synthetic()
    _, _, auroc, _ = metrics.compute_auc(labels, scores)
    for k in range(3):
        fpr, tpr = plots.roc_points(labels[:, k], scores[:, k])
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
        assert np.trapezoid(tpr, fpr) == pytest.approx(auroc[k], abs=1e-12)
        assert len(fpr) == len(np.unique(scores[:, k])) + 1  # one point per distinct score


def test_roc_points_known_curve_and_undefined_classes():
    fpr, tpr = plots.roc_points([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1])
    assert np.allclose(fpr, [0, 0, 0, 0.5, 1]) and np.allclose(tpr, [0, 0.5, 1, 1, 1])
    with pytest.raises(ValueError, match="0 positives"):
        plots.roc_points([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 negatives"):
        plots.roc_points([1, 1], [0.1, 0.2])


def test_class_order_by_prevalence_stable():
    assert plots.class_order([3, 10, 0, 10, 3]).tolist() == [1, 3, 0, 4, 2]


def test_write_plots_files_index_and_na_classes(tmp_path):
    labels, binary, scores = synthetic()
    classes = ["164889003", "426783006", "59118001", "111975006", "164917005"]
    abbreviations = metrics.load_abbreviations()
    paths = plots.write_plots(labels, binary, scores, classes, abbreviations, tmp_path / "p")
    assert [p.name for p in paths] == ["f_measure.png", "auroc.png", "roc.png", "index.html"]
    for p in paths[:3]:
        width, height = png_size(p)
        assert 700 <= width <= 3000 and 250 <= height <= 3000
        assert p.stat().st_size > 10_000
    # 6-column grid: 5 classes in one row of 2.35-in panels at 100 dpi
    assert png_size(paths[2]) == (round(2.35 * 5 * 100), round((2.45 + 0.4) * 100))
    page = paths[3].read_text(encoding="utf-8")

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [v for k, v in attrs if k in ("href", "src")]

    parser = Links()
    parser.feed(page)
    assert sorted(set(parser.found)) == ["auroc.png", "f_measure.png", "roc.png"]
    # the class without positives (LQT, 111975006) is n/a for AUROC; the all-positive
    # class (QAb) has no negatives: AUROC n/a too
    assert page.count("<td>n/a</td>") >= 2
    assert ">AF<" in page and ">LQT<" in page


def test_write_plots_all_negative_and_shape_check(tmp_path):
    labels = np.zeros((10, 3), bool)
    scores = np.linspace(0, 1, 30).reshape(10, 3)
    paths = plots.write_plots(labels, scores > 0.5, scores, ["a", "b", "c"], None, tmp_path)
    assert all(p.is_file() for p in paths)
    with pytest.raises(ValueError, match="binary must have the shape"):
        plots.write_plots(labels, labels[:5], scores, ["a", "b", "c"], None, tmp_path)
    with pytest.raises(ValueError, match="abbreviations"):
        plots.write_plots(labels, labels, scores, ["a", "b", "c"], ["x"], tmp_path)


def test_plots_import_nothing_from_team_code():
    code = (
        "import sys, evaluation.plots; "
        "bad = [m for m in sys.modules if m.split('.')[0] == 'team_code']; "
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
