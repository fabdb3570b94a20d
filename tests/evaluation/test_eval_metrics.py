"""Hand-computed cases for the Challenge 2020 metrics and the file parsers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation import metrics

N = metrics.NORMAL_CLASS


@pytest.fixture(scope="module")
def table():
    return metrics.load_scoring_table()


def _random_labels(rng, n, c):
    labels = rng.random((n, c)) < 0.15
    labels[~labels.any(axis=1), rng.integers(c)] = True
    return labels


# ---------------------------------------------------------------------------------------------
# Challenge metric
# ---------------------------------------------------------------------------------------------


def test_perfect_classifier_scores_one(table):
    rng = np.random.default_rng(1)
    c = len(table.classes)
    labels = _random_labels(rng, 200, c)
    scores = np.where(labels, 0.9, 0.1)
    res = metrics.evaluate_arrays(labels, labels, scores, table.classes, table.weights)
    assert res.challenge_metric == pytest.approx(1.0)
    assert res.accuracy == 1.0
    assert res.f_measure == pytest.approx(1.0)
    assert res.auroc == pytest.approx(1.0)
    assert res.auprc == pytest.approx(1.0)
    assert res.f_beta_measure == pytest.approx(1.0)
    assert res.g_beta_measure == pytest.approx(1.0)


def test_sinus_rhythm_only_classifier_scores_zero(table):
    rng = np.random.default_rng(2)
    c = len(table.classes)
    labels = _random_labels(rng, 150, c)
    inactive = np.zeros_like(labels)
    inactive[:, table.classes.index(N)] = True
    cm = metrics.compute_challenge_metric(table.weights, labels, inactive, table.classes)
    assert cm == pytest.approx(0.0, abs=1e-12)


def test_challenge_metric_hand_computed():
    # classes a, n (normal); W = [[1, .5], [.5, 1]]
    classes, w = ["a", "n"], np.array([[1.0, 0.5], [0.5, 1.0]])
    labels = np.array([[1, 0], [0, 1]], dtype=bool)
    outputs = np.array([[1, 1], [0, 1]], dtype=bool)
    # record 1: union {a, n} = 2 -> A[a,a] += .5, A[a,n] += .5; record 2: A[n,n] += 1
    a = metrics.compute_modified_confusion_matrix(labels, outputs)
    assert np.allclose(a, [[0.5, 0.5], [0.0, 1.0]])
    # observed = 1*.5 + .5*.5 + 1*1 = 1.75; correct = 1 + 1 = 2;
    # inactive: r1 outputs {n}, union {a, n} = 2 -> A[a,n] = .5, weighted .25; r2 adds 1 -> 1.25
    observed, correct, inactive = metrics.challenge_scores(w, labels, outputs, 1)
    assert (observed, correct, inactive) == pytest.approx((1.75, 2.0, 1.25))
    cm = metrics.compute_challenge_metric(w, labels, outputs, classes, "n")
    assert cm == pytest.approx((1.75 - 1.25) / (2.0 - 1.25))


def test_naming_bradycardia_beside_sinus_bradycardia_costs_only_on_sinus_bradycardia_alone(
    table,
):
    """docs/decision.md's table of per-record credit (the union normalisation, 2020 weights):
    sinus bradycardia (SB) alone against SB and bradycardia (Brady) as the outputs."""
    sb, brady = table.classes.index("426177001"), table.classes.index("426627000")
    sr = table.classes.index(N)
    w = table.weights[sr, sb]
    assert w == table.weights[sr, brady] == 0.45 and table.weights[sb, brady] == 0.5

    def credit(labelled, named):
        labels = np.zeros((1, len(table.classes)), dtype=bool)
        outputs = np.zeros_like(labels)
        labels[0, labelled], outputs[0, named] = True, True
        a = metrics.compute_modified_confusion_matrix(labels, outputs)
        return float(np.sum(table.weights * a))

    rows = {  # the record's labels: (credit of SB, credit of SB and Brady)
        (sb,): (1.0, 0.75),
        (brady,): (0.25, 0.75),
        (sb, brady): (0.75, 1.5),
        (sb, sr): ((1 + w) / 2, 1 / 2 + 2 * w / 3),
        (sr,): (w / 2, 2 * w / 3),
    }
    for labelled, expected in rows.items():
        got = (credit(list(labelled), [sb]), credit(list(labelled), [sb, brady]))
        assert got == pytest.approx(expected), labelled


def test_challenge_metric_is_zero_when_correct_equals_inactive(table):
    """The official 2020 scorer returns 0.0 when the perfect and the inactive score coincide."""
    labels = np.zeros((5, len(table.classes)), dtype=bool)
    labels[:, table.classes.index(N)] = True  # every record is sinus rhythm only
    outputs = np.zeros_like(labels)
    outputs[:, 0] = True
    assert metrics.compute_challenge_metric(table.weights, labels, outputs, table.classes) == 0.0


def test_unknown_normal_class_raises(table):
    labels = np.zeros((2, len(table.classes)), dtype=bool)
    with pytest.raises(ValueError, match="normal class"):
        metrics.compute_challenge_metric(table.weights, labels, labels, table.classes, "123")


def test_empty_outputs_and_labels_use_normalisation_of_one():
    labels = np.array([[0, 0], [1, 0]], dtype=bool)
    outputs = np.array([[0, 0], [0, 0]], dtype=bool)
    assert np.array_equal(
        metrics.compute_modified_confusion_matrix(labels, outputs), np.zeros((2, 2))
    )


# ---------------------------------------------------------------------------------------------
# AUROC / AUPRC
# ---------------------------------------------------------------------------------------------


def test_auc_hand_computed():
    labels = np.array([[1], [0], [1], [0]], dtype=bool)
    scores = np.array([[0.9], [0.8], [0.7], [0.1]])
    auroc, auprc, auroc_k, _ = metrics.compute_auc(labels, scores)
    # 3 of 4 (positive, negative) pairs are ordered right
    assert auroc == pytest.approx(0.75)
    # TPR steps of 1/2 at precision 1 and at precision 2/3
    assert auprc == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert auroc_k.shape == (1,)


def test_auc_ties_enter_together():
    labels = np.array([[1], [0]], dtype=bool)
    scores = np.array([[0.5], [0.5]])
    auroc, auprc, _, _ = metrics.compute_auc(labels, scores)
    # one step from (TPR 0, TNR 1) to (TPR 1, TNR 0): trapezoid 0.5; PPV 1/2 over TPR 1
    assert auroc == pytest.approx(0.5)
    assert auprc == pytest.approx(0.5)


def test_classes_without_positives_are_left_out_of_macro_means():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.2], [0.7, 0.4, 0.6], [0.6, 0.3, 0.1]])
    binary = scores > 0.5
    auroc, auprc, auroc_k, auprc_k = metrics.compute_auc(labels, scores)
    assert math.isnan(auroc_k[2]) and math.isnan(auprc_k[2])
    assert auroc == pytest.approx(np.mean(auroc_k[:2]))
    assert auprc == pytest.approx(np.mean(auprc_k[:2]))
    # class 2 has FP (record 3 scores .6) so its F-measure is 0, not NaN
    f, f_k = metrics.compute_f_measure(labels, binary)
    assert f_k[2] == 0.0
    # a class with no positive labels and no positive outputs has NaN F and is skipped
    binary[:, 2] = False
    f, f_k = metrics.compute_f_measure(labels, binary)
    assert math.isnan(f_k[2])
    assert f == pytest.approx(np.mean(f_k[:2]))


def test_class_without_negatives_has_nan_auroc_but_auprc():
    labels = np.array([[1], [1], [1]], dtype=bool)
    scores = np.array([[0.2], [0.5], [0.5]])
    _, _, auroc_k, auprc_k = metrics.compute_auc(labels, scores)
    assert math.isnan(auroc_k[0])
    assert auprc_k[0] == pytest.approx(1.0)


def test_nan_scores_count_as_zero(table):
    rng = np.random.default_rng(3)
    c = len(table.classes)
    labels = _random_labels(rng, 60, c)
    scores = rng.random((60, c))
    scores[rng.random((60, c)) < 0.2] = np.nan
    binary = np.nan_to_num(scores) > 0.5
    with_nan = metrics.evaluate_arrays(labels, binary, scores, table.classes, table.weights)
    zeroed = metrics.evaluate_arrays(
        labels, binary, np.nan_to_num(scores), table.classes, table.weights
    )
    assert with_nan.auroc == zeroed.auroc and with_nan.auprc == zeroed.auprc


# ---------------------------------------------------------------------------------------------
# F-measure, F-beta, G-beta, accuracy
# ---------------------------------------------------------------------------------------------


def test_beta_measures_hand_computed():
    # one record labelled {a, b}, output {a}: each contributes 1/2; class c never appears
    labels = np.array([[1, 1, 0]], dtype=bool)
    outputs = np.array([[1, 0, 0]], dtype=bool)
    f_beta, g_beta = metrics.compute_beta_measures(labels, outputs, beta=2)
    # a: tp=.5 -> F2 = 1, G2 = 1; b: fn=.5 -> F2 = 0, G2 = 0; c: NaN (left out)
    assert f_beta == pytest.approx(0.5)
    assert g_beta == pytest.approx(0.5)
    # second record labelled {a} with output {a, c}: weight 1
    labels = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    outputs = np.array([[1, 0, 0], [1, 0, 1]], dtype=bool)
    f_beta, g_beta = metrics.compute_beta_measures(labels, outputs, beta=2)
    # a: tp 1.5 -> 1; b: fn .5 -> 0; c: fp 1 -> 0
    assert f_beta == pytest.approx(1 / 3)
    assert g_beta == pytest.approx(1 / 3)


def test_f_measure_and_accuracy_hand_computed():
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=bool)
    outputs = np.array([[1, 0], [1, 0], [1, 1], [0, 0]], dtype=bool)
    f, f_k = metrics.compute_f_measure(labels, outputs)
    # class 0: tp 2, fp 1, fn 0 -> 4/5; class 1: tp 1, fn 1 -> 2/3
    assert f_k == pytest.approx([0.8, 2 / 3])
    assert f == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics.compute_accuracy(labels, outputs) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# Parsers and equivalent classes
# ---------------------------------------------------------------------------------------------


def test_header_dx_line_forms(tmp_path):
    assert metrics.parse_header_labels("x\n#Dx: 1,2, 3\n") == ["1", "2", "3"]
    assert metrics.parse_header_labels("x\n# Dx: 4,4,,5\n") == ["4", "5"]
    assert metrics.parse_header_labels("#Dx:6\n") == ["6"]
    assert metrics.parse_header_labels("#Age: 5\n") is None
    path = tmp_path / "A1.hea"
    path.write_bytes(b"A1 12 500 5000\n#Sex: M\xe4le\n#Dx: 164889003,59118001\n")
    assert metrics.read_header_labels(path) == ["164889003", "59118001"]


def test_labels_equivalents_or_ed_and_unscored_ignored(table):
    codes = [["59118001"], ["713427006", "59118001"], ["195042002"], []]
    labels = metrics.label_matrix_from_codes(codes, table)
    j = table.classes.index("713427006")
    assert labels[:, j].tolist() == [True, True, False, False]
    assert labels.sum(axis=1).tolist() == [1, 1, 0, 0]


def test_outputs_equivalents_or_ed_and_averaged(table):
    rep, other = "713427006", "59118001"
    j = table.classes.index(rep)
    rows = [
        ([rep, other], [False, True], [0.2, 0.6]),  # OR -> True, mean 0.4
        ([other, rep], [False, False], [float("nan"), 0.3]),  # nanmean -> 0.3
        ([rep, other], [False, False], [float("nan"), float("nan")]),  # all NaN -> 0
        (["195042002", N], [True, True], [0.9, 0.7]),  # unscored ignored
        None,  # malformed -> all negative
    ]
    binary, scores = metrics.output_matrices_from_rows(rows, table)
    assert binary[:, j].tolist() == [True, False, False, False, False]
    assert scores[:, j] == pytest.approx([0.4, 0.3, 0.0, 0.0, 0.0])
    k = table.classes.index(N)
    assert binary[3].sum() == 1 and binary[3, k] and scores[3, k] == pytest.approx(0.7)
    assert not binary[4].any() and not scores[4].any()


def test_output_text_parsing_like_the_official_scorer():
    text = "#A1\n164889003,426783006,1\n1,t,True\nabc,nan,0.25\n"
    codes, binary, scores = metrics.parse_output_text(text)
    assert codes == ["164889003", "426783006", "1"]
    assert binary == [True, True, True]
    assert scores[0] == 0.0 and math.isnan(scores[1]) and scores[2] == 0.25
    codes, binary, scores = metrics.parse_output_text("a,b\r\n\r\nF, 1 \r\n0.1,2e-1\r\n")
    assert binary == [False, True] and scores == [0.1, 0.2]


@pytest.mark.parametrize(
    "text",
    ["", "#A1\n", "#A1\na,b\n1,0\n", "#A1\na,b\n1,0\n0.1,0.2,0.3\n", "a,b\n1,0\n0.1,0.2\n1\n"],
)
def test_malformed_output_text_raises(text):
    with pytest.raises(metrics.MalformedOutputError):
        metrics.parse_output_text(text)


def test_malformed_file_is_all_negative_with_message(tmp_path, table):
    good = tmp_path / "A1.csv"
    good.write_text(f"#A1\n{N}\n1\n0.8\n")
    bad = tmp_path / "A2.csv"
    bad.write_text("#A2\n164889003,426783006\n1,0\n")
    seen = []
    binary, scores, malformed = metrics.load_output_matrices(
        [good, bad], table, on_malformed=seen.append
    )
    assert len(malformed) == 1 and "A2.csv" in malformed[0] and seen == malformed
    assert binary[0].sum() == 1 and not binary[1].any() and not scores[1].any()
    with pytest.raises(metrics.MalformedOutputError, match=r"A2\.csv"):
        metrics.load_output_matrices([good, bad], table, strict=True)


# ---------------------------------------------------------------------------------------------
# Bootstrap and per-source breakdown
# ---------------------------------------------------------------------------------------------


def test_record_contributions_sum_to_the_challenge_scores(table):
    rng = np.random.default_rng(4)
    c = len(table.classes)
    labels = _random_labels(rng, 80, c)
    outputs = rng.random((80, c)) < 0.1
    k = table.classes.index(N)
    parts = metrics.record_challenge_contributions(table.weights, labels, outputs, k)
    totals = metrics.challenge_scores(table.weights, labels, outputs, k)
    assert [p.sum() for p in parts] == pytest.approx(list(totals))


def test_bootstrap_is_seeded_and_brackets_the_estimate(table):
    rng = np.random.default_rng(5)
    c = len(table.classes)
    labels = _random_labels(rng, 300, c)
    outputs = labels ^ (rng.random((300, c)) < 0.05)
    cm = metrics.compute_challenge_metric(table.weights, labels, outputs, table.classes)
    a = metrics.bootstrap_challenge_metric(table.weights, labels, outputs, table.classes, N, 300, 7)
    b = metrics.bootstrap_challenge_metric(table.weights, labels, outputs, table.classes, N, 300, 7)
    assert np.array_equal(a, b) and a.shape == (300,)
    lo, hi = metrics.bootstrap_ci(a)
    assert lo < cm < hi
    assert hi - lo < 0.3
    # a perfect classifier is 1 in every resample
    perfect = metrics.bootstrap_challenge_metric(
        table.weights, labels, labels, table.classes, N, 50, 0
    )
    assert perfect == pytest.approx(np.ones(50))


def test_record_source_longest_prefix():
    assert metrics.record_source("HR00001") == "HR"
    assert metrics.record_source("JS00001") == "JS"
    assert metrics.record_source("S0001") == "S"
    assert metrics.record_source("E00001") == "E"
    assert metrics.record_source("LU0001") == "LU"
    assert metrics.record_source("I0001") == "I"
    assert metrics.record_source("Q0001") == "Q"
    assert metrics.record_source("A0001") == "A"
    assert metrics.record_source("X9") == "other"


@pytest.mark.parametrize(
    "name, source",
    [
        ("HR00001", "HR"),  # PTB-XL: the two-letter prefix wins over none
        ("JS10647", "JS"),  # Chapman-Shaoxing and Ningbo
        ("LU0001", "LU"),
        ("S0001", "S"),
        ("SYN00001", "other"),  # synthetic records: S followed by a letter is not PTB
        ("LUX", "other"),
        ("HRV1", "other"),
        ("E", "other"),  # a prefix alone
        ("A\u00b2", "other"),  # a superscript is not a record number
        ("", "other"),
        ("X9", "other"),
    ],
)
def test_record_source_is_a_known_prefix_followed_by_a_digit(name, source):
    from team_code.data import records

    assert metrics.record_source(name) == source
    assert records.record_source is metrics.record_source  # one definition for kit and scorer
    assert metrics.record_source("JS0001", prefixes=("J", "JS")) == "JS"  # the longest prefix


def test_per_source_scores_match_subsets(table):
    rng = np.random.default_rng(6)
    c = len(table.classes)
    records = [f"{p}{i:04d}" for i, p in enumerate(["A", "HR", "E", "X"] * 25)]
    labels = _random_labels(rng, 100, c)
    outputs = labels ^ (rng.random((100, c)) < 0.1)
    rows = metrics.per_source_scores(records, labels, outputs, table.classes, table.weights)
    assert [r["source"] for r in rows] == ["A", "HR", "E", "other"]
    assert [r["records"] for r in rows] == [25, 25, 25, 25]
    mask = np.array([r.startswith("HR") for r in records])
    hr = rows[1]
    assert hr["challenge_metric"] == pytest.approx(
        metrics.compute_challenge_metric(table.weights, labels[mask], outputs[mask], table.classes)
    )
    assert hr["f_measure"] == pytest.approx(
        metrics.compute_f_measure(labels[mask], outputs[mask])[0]
    )


def test_shape_mismatch_raises(table):
    with pytest.raises(ValueError, match="shape"):
        metrics.compute_f_measure(np.zeros((3, 2), bool), np.zeros((3, 3), bool))
