"""The command line, run through subprocess from another working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation import evaluate, metrics

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "evaluation" / "evaluate.py"
HEADER = "AUROC,AUPRC,Accuracy,F-measure,Fbeta-measure,Gbeta-measure,Challenge metric"
N = metrics.NORMAL_CLASS


def run_cli(args, cwd, module=False):
    env = dict(os.environ)
    if module:
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "evaluation.evaluate", *map(str, args)]
    else:
        env.pop("PYTHONPATH", None)
        cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def write_case(root: Path, seed: int = 0, n: int = 40):
    """Random headers + outputs; returns folders and the arrays they encode."""
    rng = np.random.default_rng(seed)
    table = metrics.load_scoring_table()
    classes = list(table.classes)
    labels_dir, outputs_dir = root / "labels", root / "outputs"
    labels_dir.mkdir()
    outputs_dir.mkdir()
    c = len(classes)
    labels = rng.random((n, c)) < 0.1
    labels[~labels.any(axis=1), classes.index(N)] = True
    scores = np.round(rng.random((n, c)), 2)
    binary = scores > 0.6
    names = [f"{p}{i:04d}" for i, p in enumerate(["A", "E", "HR", "Q"] * (n // 4))]
    for i, name in enumerate(names):
        dx = ",".join(classes[j] for j in np.flatnonzero(labels[i]))
        (labels_dir / f"{name}.hea").write_text(f"{name} 12 500 5000\n#Age: 50\n#Dx: {dx}\n")
        (outputs_dir / f"{name}.csv").write_text(
            f"#{name}\n{','.join(classes)}\n"
            + ",".join("1" if b else "0" for b in binary[i])
            + "\n"
            + ",".join(str(s) for s in scores[i])
            + "\n"
        )
    return labels_dir, outputs_dir, names, labels, binary, scores, table


def test_script_writes_full_precision_csvs(tmp_path):
    labels_dir, outputs_dir, _, labels, binary, scores, table = write_case(tmp_path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    proc = run_cli([labels_dir, outputs_dir, "s.csv", "c.csv"], cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert "Challenge metric" in proc.stdout
    lines = (elsewhere / "s.csv").read_text().splitlines()
    assert lines[0] == HEADER
    values = [float(x) for x in lines[1].split(",")]
    expected = metrics.evaluate_arrays(labels, binary, scores, table.classes, table.weights)
    assert values == list(expected.overall().values())  # repr round-trips exactly
    rows = [r.split(",") for r in (elsewhere / "c.csv").read_text().splitlines()]
    assert [r[0] for r in rows] == ["Classes", "AUROC", "AUPRC", "F-measure"]
    assert rows[0][1:] == list(table.classes)
    assert np.allclose(
        [float(x) for x in rows[1][1:]], expected.auroc_classes, rtol=0, atol=0, equal_nan=True
    )
    assert np.allclose(
        [float(x) for x in rows[3][1:]], expected.f_measure_classes, atol=0, equal_nan=True
    )


def test_module_form_by_source_and_bootstrap(tmp_path):
    labels_dir, outputs_dir, names, labels, binary, _, table = write_case(tmp_path, seed=1)
    src = tmp_path / "by_source.csv"
    proc = run_cli(
        [labels_dir, outputs_dir, "--bootstrap", "200", "--seed", "3", "--by-source", src],
        cwd=tmp_path,
        module=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "95% CI" in proc.stdout and "bootstrap 200" in proc.stdout
    rows = [r.split(",") for r in src.read_text().splitlines()]
    assert rows[0] == ["Source", "Records", "Challenge metric", "F-measure"]
    assert [r[0] for r in rows[1:]] == ["A", "Q", "HR", "E"]
    assert all(int(r[1]) == 10 for r in rows[1:])
    mask = np.array([n.startswith("HR") for n in names])
    hr = next(r for r in rows if r[0] == "HR")
    assert float(hr[2]) == pytest.approx(
        metrics.compute_challenge_metric(table.weights, labels[mask], binary[mask], table.classes)
    )


def test_malformed_output_warns_and_strict_fails(tmp_path):
    labels_dir, outputs_dir, names, *_ = write_case(tmp_path, seed=2)
    bad = outputs_dir / f"{names[3]}.csv"
    bad.write_text(f"#{names[3]}\n{N}\n1\n")  # score line missing
    proc = run_cli([labels_dir, outputs_dir, tmp_path / "s.csv"], cwd=tmp_path)
    assert proc.returncode == 0
    assert "warning" in proc.stderr and bad.name in proc.stderr
    proc = run_cli([labels_dir, outputs_dir, "--strict"], cwd=tmp_path)
    assert proc.returncode != 0
    assert bad.name in proc.stderr


def test_missing_output_is_an_error_naming_the_record(tmp_path):
    labels_dir, outputs_dir, names, *_ = write_case(tmp_path, seed=3)
    (outputs_dir / f"{names[5]}.csv").unlink()
    proc = run_cli([labels_dir, outputs_dir, tmp_path / "s.csv"], cwd=tmp_path)
    assert proc.returncode != 0
    assert names[5] in proc.stderr
    assert not (tmp_path / "s.csv").exists()


def test_weights_option_and_in_process_main(tmp_path, capsys):
    labels_dir, outputs_dir, *_ = write_case(tmp_path, seed=4)
    moved = tmp_path / "tables" / "my_weights.csv"
    moved.parent.mkdir()
    moved.write_bytes(metrics.default_weights_path().read_bytes())
    out_a, out_b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert evaluate.main([str(labels_dir), str(outputs_dir), str(out_a), "--quiet"]) == 0
    assert (
        evaluate.main(
            [str(labels_dir), str(outputs_dir), str(out_b), "--weights", str(moved), "--quiet"]
        )
        == 0
    )
    assert out_a.read_text() == out_b.read_text()
    assert evaluate.main([str(labels_dir), str(outputs_dir), "--weights", "/nonexistent.csv"]) == 1
    assert "cannot load weights" in capsys.readouterr().err


def _output_text(record, codes, binary, scores):
    return f"#{record}\n{','.join(codes)}\n{','.join(binary)}\n{','.join(map(str, scores))}\n"


def test_real_headers_perfect_and_inactive_outputs(shared_data, tmp_path):
    """On the 231 real records: outputs equal to the labels score 1, sinus-only scores 0."""
    headers = shared_data / "challenge"
    classes = list(metrics.load_scoring_table().classes)
    perfect, inactive = tmp_path / "perfect", tmp_path / "inactive"
    perfect.mkdir()
    inactive.mkdir()
    for h in sorted(headers.glob("*.hea")):
        # raw codes: equivalent and unscored codes included, merged by the scorer
        codes = metrics.read_header_labels(h) or [N]
        positive = "1" if metrics.read_header_labels(h) else "0"
        (perfect / f"{h.stem}.csv").write_text(
            _output_text(h.stem, codes, [positive] * len(codes), [1.0] * len(codes))
        )
        (inactive / f"{h.stem}.csv").write_text(
            _output_text(
                h.stem, classes, ["1" if c == N else "0" for c in classes], [0.5] * len(classes)
            )
        )
    results = {}
    for folder in (perfect, inactive):
        out = tmp_path / f"{folder.name}.csv"
        assert evaluate.main([str(headers), str(folder), str(out), "--quiet", "--strict"]) == 0
        head, row = out.read_text().splitlines()[:2]
        results[folder.name] = dict(zip(head.split(","), map(float, row.split(","))))
    assert results["perfect"]["Challenge metric"] == pytest.approx(1.0)
    assert results["inactive"]["Challenge metric"] == pytest.approx(0.0, abs=1e-12)
    # all 24 merged classes occur among the 231 records (data README), so every class has
    # positives: perfect outputs give macro F-measure, AUROC and AUPRC of exactly 1
    assert results["perfect"]["F-measure"] == pytest.approx(1.0)
    assert results["perfect"]["AUROC"] == pytest.approx(1.0)
    assert results["perfect"]["AUPRC"] == pytest.approx(1.0)
    assert results["perfect"]["Accuracy"] == pytest.approx(1.0)


def test_evaluate_folders_api(tmp_path):
    labels_dir, outputs_dir, names, labels, binary, scores, table = write_case(tmp_path, seed=5)
    res = metrics.evaluate_folders(labels_dir, outputs_dir)
    expected = metrics.evaluate_arrays(labels, binary, scores, table.classes, table.weights)
    assert res.overall() == expected.overall()
    assert res.n_records == len(names)
    (outputs_dir / f"{names[0]}.csv").unlink()
    (outputs_dir / f"{names[7]}.csv").unlink()
    with pytest.raises(metrics.MissingOutputError) as info:
        metrics.evaluate_folders(labels_dir, outputs_dir)
    assert info.value.records == [names[0], names[7]]
