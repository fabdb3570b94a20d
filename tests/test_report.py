"""Per-record report: PNG pages, thumbnails, HTML index and per-panel status.

Real records from the challenge folder: A0003 (atrial fibrillation, MANIFEST dx 164889003) and
A0002 (normal sinus rhythm, 426783006); synthetic records for the failure cases (all-zero
signal, limb leads only, 1-s record).
"""

from __future__ import annotations

import json
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from team_code import report
from team_code.classifiers.base import Evidence
from team_code.data.labels import scored_classes
from team_code.data.records import Record, RecordError, load_record

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AF, NSR = "164889003", "426783006"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()[:24]
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src"):
                self.links.append(value)


def links_of(index: Path) -> list[str]:
    parser = _Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser.links


def fake_explanation(record: Record) -> dict:
    """An explanation in the documented RulesClassifier.explain format, one rule fired."""
    if record.name == "A0002":
        raise RuntimeError("measurement chain broke")
    return {
        "record": record.name,
        "notes": [],
        "measurements": {},
        "labels": ["AF"],
        "rules": [
            {
                "code": AF,
                "abbreviation": "AF",
                "criterion": "Atrial fibrillation: irregular RR without P waves",
                "score": 0.96,
                "threshold": 0.5,
                "label": True,
                "terms": [
                    {
                        "measure": "rr_irregularity",
                        "value": 0.155,
                        "op": ">",
                        "threshold": 0.08,
                        "unit": "",
                        "score": 0.99,
                    }
                ],
                "missing": [],
                "why": "fired: rr_irregularity = 0.155 > 0.08 (0.99)",
            },
            {"code": NSR, "abbreviation": "NSR", "score": 0.1, "threshold": 0.5, "label": False},
        ],
    }


@pytest.fixture(scope="module")
def written(challenge_dir, tmp_path_factory):
    """One report over two real and three synthetic records (written once)."""
    af = load_record(challenge_dir / "A0003.hea")
    nsr = load_record(challenge_dir / "A0002.hea")
    flat = Record("FLAT", np.zeros_like(af.signal), af.fs, af.leads, 60, "Male", ())
    limb = Record("LIMB", af.signal[:6].copy(), af.fs, af.leads[:6], None, None, (AF,))
    short = Record("SHORT 1s", af.signal[:, :500].copy(), af.fs, af.leads, 50, "Female", ())
    records = [af, nsr, flat, limb, short]
    classes = list(scored_classes().codes)
    scores = np.full((len(records), len(classes)), 0.2)
    scores[0, classes.index(AF)] = 0.9
    scores[1, classes.index(NSR)] = 0.8
    thresholds = np.full(len(classes), 0.5)
    thresholds[classes.index(NSR)] = 0.85  # NSR 0.8 stays below its threshold
    members = {"rules": scores * 0.5, "parallel_cnn": np.clip(scores + 0.05, 0, 1)}
    out = tmp_path_factory.mktemp("report")
    index = report.write_report(
        records,
        scores,
        classes,
        thresholds,
        out,
        evidence=lambda record: Evidence(rules=fake_explanation(record)),
        member_scores=members,
        top_k=4,
    )
    rows = json.loads((out / "report.json").read_text())["records"]
    return out, index, {r["record"]: r for r in rows}


def test_pages_and_thumbnails_are_pngs_of_page_size(written):
    out, _, rows = written
    width_px = round(report.ReportConfig().page_in[0] * report.ReportConfig().dpi)
    height_px = round(report.ReportConfig().page_in[1] * report.ReportConfig().dpi)
    assert set(rows) == {"A0003", "A0002", "FLAT", "LIMB", "SHORT 1s"}
    for row in rows.values():
        page = out / row["file"]
        assert png_size(page) == (width_px, height_px)
        assert page.stat().st_size > 50_000  # a drawn page, not a blank canvas
        thumb_w, thumb_h = png_size(out / row["thumb"])
        assert thumb_w == report.ReportConfig().thumb_px
        assert abs(thumb_h - thumb_w * height_px / width_px) <= 1
    assert rows["SHORT 1s"]["file"] == "SHORT_1s.png"  # unsafe characters replaced


def test_index_links_every_record_and_every_link_resolves(written):
    out, index, rows = written
    assert index == out / "index.html"
    links = links_of(index)
    for row in rows.values():
        assert row["file"] in links and row["thumb"] in links
        assert row["record"] in index.read_text(encoding="utf-8")
    for link in links:
        assert not link.startswith(("/", "file:", "http")), link
        assert (out / link).is_file(), link


def test_real_records_draw_every_panel(written):
    _, _, rows = written
    af = rows["A0003"]
    assert af["panels"] == dict.fromkeys(report.PANELS, "ok")
    assert af["predicted"] == "AF" and af["true"] == "AF"
    assert af["top"].startswith("AF 0.90")
    nsr = rows["A0002"]
    assert nsr["predicted"] == ""  # 0.8 < NSR threshold 0.85
    assert nsr["true"] == "NSR"
    assert nsr["panels"]["rules"].startswith("not available: evidence failed: RuntimeError")
    assert all(nsr["panels"][p] == "ok" for p in report.PANELS if p != "rules")


def test_flat_short_and_missing_leads_give_not_available_panels(written):
    _, _, rows = written
    flat = rows["FLAT"]["panels"]
    assert flat["beats"].startswith("not available")
    assert flat["vcg"].startswith("not available")
    assert flat["measurements"].startswith("not available")
    assert flat["ecg"].startswith("partial: QRS not detected")
    assert flat["scalogram"] == "partial: blank image (flat signal)"
    assert flat["scores"] == "ok" and flat["rules"] == "ok"
    limb = rows["LIMB"]["panels"]
    assert limb["vcg"].startswith("not available: needs leads V1")
    assert limb["scalogram"].startswith("not available") and "V1" in limb["scalogram"]
    assert limb["ecg"] == "partial: leads missing: V1, V2, V3, V4, V5, V6"
    short = rows["SHORT 1s"]["panels"]
    assert short["ecg"].startswith("partial: QRS not detected (record too short")
    assert short["beats"].startswith("not available")


def test_a_failing_panel_is_reported_not_raised(tmp_path, records_dir, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(report, "_draw_vcg", broken)
    record = load_record(sorted(records_dir.glob("*.hea"))[0])
    classes = list(scored_classes().codes)
    status = report.render_record(
        record, np.full(len(classes), 0.3), classes, np.full(len(classes), 0.5), tmp_path / "a.png"
    )
    assert status["vcg"] == "not available: RuntimeError: boom"
    assert status["rules"] == "not available: no rules explanation given"
    assert status["ecg"] == "ok"
    assert png_size(tmp_path / "a.png")[0] > 1000


class _Flaky(list):
    """A record sequence whose second record cannot be read (as a RecordSet may)."""

    names = ("A", "BAD")

    def __getitem__(self, i):
        if i == 1:
            raise RecordError("BAD", "signal file missing")
        return super().__getitem__(i)


def test_unreadable_record_is_listed_not_fatal_and_shapes_are_checked(tmp_path):
    fs = 250.0
    t = np.arange(int(4 * fs)) / fs
    beat = np.exp(-(((t % 0.8) - 0.4) ** 2) / (2 * 0.01**2)).astype(np.float32)  # 75 bpm
    signal = np.tile(beat, (12, 1))
    good = Record("A", signal, fs, tuple(report.STANDARD_LEADS), None, None, ())
    classes = [AF, NSR]
    records = _Flaky([good, good])
    index = report.write_report(records, np.zeros((2, 2)), classes, [0.5, 0.5], tmp_path)
    rows = json.loads((tmp_path / "report.json").read_text())["records"]
    assert [r["record"] for r in rows] == ["A", "BAD"]
    assert "signal file missing" in rows[1]["error"] and "file" not in rows[1]
    assert all((tmp_path / link).is_file() for link in links_of(index))
    with pytest.raises(ValueError, match="scores must be"):
        report.write_report([good], np.zeros((2, 2)), classes, [0.5, 0.5], tmp_path)
    with pytest.raises(ValueError, match="member_scores"):
        report.write_report(
            [good], np.zeros((1, 2)), classes, [0.5, 0.5], tmp_path, member_scores={"x": [0.1]}
        )


def test_rule_panel_lists_every_term_for_and_against_with_tuned_and_published_limits():
    """A fired rule's panel lines: criterion, the terms for it, then those against it
    (marked), the tuned threshold beside the published one; no term is cut off."""
    terms = [
        {
            "measure": f"m{i}_mv",
            "value": 0.1 + i,
            "op": ">",
            "threshold": 0.05,
            "published": 0.05,
            "unit": "mV",
            "score": 0.9,
            "role": "for",
        }
        for i in range(12)
    ]
    terms.append(
        {
            "measure": "p_mv",
            "value": 0.0516,
            "op": ">",
            "threshold": 0.05,
            "published": 0.05,
            "unit": "mV",
            "score": 0.55,
            "role": "against",
        }
    )
    terms.append(
        {
            "measure": "rr_irregularity",
            "value": 0.2,
            "op": ">",
            "threshold": 0.11,
            "published": 0.08,
            "unit": "",
            "score": 0.99,
            "role": "for",
        }
    )
    rule = {
        "abbreviation": "AF",
        "criterion": "Atrial fibrillation: irregularly irregular RR without distinct P waves",
        "score": 0.7,
        "threshold": 0.5,
        "label": True,
        "terms": terms,
        "missing": ["zc_per_s"],
    }
    lines = report.rule_lines(rule, 104)
    text = " ".join(line.strip() for line in lines)
    assert lines[0].startswith("AF 0.70 (≥ 0.50): Atrial fibrillation: irregularly")
    assert all(f"m{i}_mv" in text for i in range(12))  # every decisive term is there
    against = [line for line in lines if "p_mv" in line]
    assert len(against) == 1 and against[0].strip().startswith("against:")
    assert "rr_irregularity 0.2 > 0.11 (tuned; published 0.08)" in text
    assert "p_mv 0.0516 > 0.05 mV" in text and "published 0.05" not in text
    assert text.endswith("not measurable (scored 0): zc_per_s")
    assert all(len(line) <= 104 for line in lines)
    silent = dict(rule, threshold=1.0000000000000002, label=False)
    assert report.rule_lines(silent, 104)[0].startswith("AF 0.70 (silent)")


def test_predicted_labels_are_the_labels_the_run_wrote(challenge_dir, tmp_path):
    """The index and page name the labels given (what the run wrote, which a decision policy
    may set apart from the thresholds); without them, each class at its threshold."""
    record = load_record(challenge_dir / "A0002.hea")
    classes = list(scored_classes().codes)
    brady, sb = classes.index("426627000"), classes.index("426177001")
    scores = np.full((1, len(classes)), 0.1)
    scores[0, [brady, sb]] = 0.9
    scores[0, 0] = np.nan
    thresholds = np.full(len(classes), 0.5)
    labels = report.predicted_labels(scores, thresholds)
    assert np.flatnonzero(labels[0]).tolist() == sorted([brady, sb])
    abbreviation = dict(zip(classes, scored_classes().abbreviations))
    out = report.write_report([record], scores, classes, thresholds, tmp_path / "a")
    row = json.loads((out.parent / "report.json").read_text())["records"][0]
    assert set(row["predicted"].split(", ")) == {
        abbreviation[classes[brady]],
        abbreviation[classes[sb]],
    }
    given = np.zeros_like(labels)
    given[0, sb] = True
    out = report.write_report([record], scores, classes, thresholds, tmp_path / "b", labels=given)
    row = json.loads((out.parent / "report.json").read_text())["records"][0]
    assert row["predicted"] == abbreviation[classes[sb]]
    with pytest.raises(ValueError, match="labels must be shaped like scores"):
        report.write_report([record], scores, classes, thresholds, tmp_path / "c", labels=given[0])


def test_a_report_refuses_output_files_of_other_classes(tmp_path):
    """The report reads each output file's labels and scores against the model's classes: a
    file written for other classes (another model's, or the same classes in another order)
    is refused with its name, not drawn under the wrong class names."""
    from types import SimpleNamespace

    from team_code.data.outputs import write_output

    classes = list(scored_classes().codes)
    model = SimpleNamespace(classes_=classes, thresholds_=np.full(len(classes), 0.5))
    labels, scores = np.zeros(len(classes), int), np.full(len(classes), 0.1)
    out = tmp_path / "outputs"
    write_output(out / "A0001.csv", "A0001", classes[::-1], labels, scores)
    paths = {"A0001": tmp_path / "A0001.hea"}
    with pytest.raises(ValueError, match=r"A0001\.csv.*classes"):
        report._model_report(model, paths, ["A0001"], out, tmp_path / "r", log=None)


def test_classes_are_listed_by_score_nan_last_ties_in_class_order():
    from team_code.report import by_score

    scores = [0.2, float("nan"), 0.9, 0.2, 0.5]
    assert by_score(scores) == [2, 4, 0, 3, 1]
    assert by_score(scores, [True, True, False, True, False]) == [0, 3, 1]


def test_measurements_and_beat_marks_are_the_global_intervals(challenge_dir):
    """The page gives the intervals as the interval standards define them (first onset to
    last offset over the leads) and marks those boundaries on the median beats; the
    leads-together values the rules read stand on a line of their own."""
    record = load_record(challenge_dir / "A0002.hea")
    prep = report._prepare(record, report.ReportConfig())
    m = prep.measurements
    v = m.values
    assert v["global_qrs_ms"] != v["qrs_ms"]  # the two differ on this record
    text = "\n".join(report._measurement_lines(prep))
    assert f"QRS {v['global_qrs_ms']:.0f} ms" in text and f"QT {v['global_qt_ms']:.0f} ms" in text
    assert f"PR        {v['global_pr_ms']:.0f} ms" in text
    assert f"Rules read (leads together): PR {v['pr_ms']:.0f}" in text
    assert f"QRS {v['qrs_ms']:.0f}," in text
    assert report._global_delineation(m) is m.leads.global_


def test_no_p_wave_is_marked_where_the_rhythm_has_none(challenge_dir):
    """Atrial fibrillation (A0003): the global delineation gives no P wave, and the beat
    panel marks none without calling the panel partial."""
    record = load_record(challenge_dir / "A0003.hea")
    prep = report._prepare(record, report.ReportConfig())
    assert prep.measurements.values["p_present"] == 0
    d = report._global_delineation(prep.measurements)
    assert not np.isfinite(d.p_on) and not np.isfinite(d.p_off)
