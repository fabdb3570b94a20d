"""The per-record report states the kit's intended use on every page and on its index."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from team_code import report
from team_code.data.labels import scored_classes
from team_code.data.records import load_record
from team_code.data.synth import generate_dataset


def test_report_pages_and_index_state_the_intended_use(tmp_path, monkeypatch):
    headers = generate_dataset(tmp_path / "data", n_records=1, seed=3)
    record = load_record(headers[0])
    classes = list(scored_classes().codes)
    drawn: list[str] = []
    real_text = Figure.text

    def text(self, x, y, s, *args, **kwargs):
        drawn.append(s)
        return real_text(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Figure, "text", text)
    index = report.write_report(
        [record],
        np.full((1, len(classes)), 0.2),
        classes,
        np.full(len(classes), 0.5),
        tmp_path / "report",
    )
    assert "not a medical device" in report.INTENDED_USE
    assert report.INTENDED_USE in drawn
    assert report.INTENDED_USE in index.read_text(encoding="utf-8")
