"""The vectorised metrics against a slow, obvious loop implementation of the definitions.

The reference below is written from the Challenge 2020 definitions (not from any scorer's
code): explicit loops over thresholds, records and classes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation import metrics


def ref_auc(labels, scores):
    """Per-class AUROC/AUPRC with an explicit loop over distinct thresholds."""
    n, c = labels.shape
    auroc, auprc = np.full(c, np.nan), np.full(c, np.nan)
    for k in range(c):
        y, s = labels[:, k], scores[:, k]
        pos, neg = int(y.sum()), int((~y).sum())
        points = [(0, 0)]
        for t in sorted(set(s.tolist()), reverse=True):
            tp = sum(1 for i in range(n) if s[i] >= t and y[i])
            fp = sum(1 for i in range(n) if s[i] >= t and not y[i])
            points.append((tp, fp))
        if pos == 0:
            continue
        roc, pr = 0.0, 0.0
        for (tp0, fp0), (tp1, fp1) in itertools.pairwise(points):
            d_tpr = tp1 / pos - tp0 / pos
            pr += d_tpr * tp1 / (tp1 + fp1)
            if neg:
                roc += 0.5 * d_tpr * ((neg - fp0) / neg + (neg - fp1) / neg)
        auprc[k] = pr
        auroc[k] = roc if neg else math.nan
    return auroc, auprc


def ref_modified_confusion(labels, outputs):
    """A[j, k] summed record by record with weight 1 / max(|labels OR outputs|, 1)."""
    n, c = labels.shape
    a = np.zeros((c, c))
    for i in range(n):
        norm = max(sum(1 for j in range(c) if labels[i, j] or outputs[i, j]), 1)
        for j in range(c):
            for k in range(c):
                if labels[i, j] and outputs[i, k]:
                    a[j, k] += 1.0 / norm
    return a


def ref_challenge(weights, labels, outputs, normal_index):
    obs = np.sum(weights * ref_modified_confusion(labels, outputs))
    cor = np.sum(weights * ref_modified_confusion(labels, labels))
    inactive = np.zeros_like(labels)
    inactive[:, normal_index] = True
    ina = np.sum(weights * ref_modified_confusion(labels, inactive))
    return 0.0 if cor == ina else (obs - ina) / (cor - ina)


def ref_f_and_beta(labels, outputs, beta=2):
    n, c = labels.shape
    f, fb, gb = np.full(c, np.nan), np.full(c, np.nan), np.full(c, np.nan)
    for k in range(c):
        tp = fp = fn = 0.0
        wtp = wfp = wfn = 0.0
        for i in range(n):
            w = 1.0 / max(int(labels[i].sum()), 1)
            if labels[i, k] and outputs[i, k]:
                tp += 1
                wtp += w
            elif outputs[i, k]:
                fp += 1
                wfp += w
            elif labels[i, k]:
                fn += 1
                wfn += w
        if 2 * tp + fp + fn:
            f[k] = 2 * tp / (2 * tp + fp + fn)
        if (1 + beta**2) * wtp + wfp + beta**2 * wfn:
            fb[k] = (1 + beta**2) * wtp / ((1 + beta**2) * wtp + wfp + beta**2 * wfn)
        if wtp + wfp + beta * wfn:
            gb[k] = wtp / (wtp + wfp + beta * wfn)
    return f, fb, gb


def ref_accuracy(labels, outputs):
    return sum(all(labels[i] == outputs[i]) for i in range(len(labels))) / len(labels)


def _nanmean(x):
    x = np.asarray(x)
    return math.nan if np.all(np.isnan(x)) else float(np.nanmean(x))


def _close(a, b, tol=1e-10):
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    return a.shape == b.shape and bool(np.all(np.isclose(a, b, rtol=0, atol=tol, equal_nan=True)))


def _check(labels, binary, scores, classes, weights, normal="n"):
    res = metrics.evaluate_arrays(labels, binary, scores, classes, weights, normal)
    auroc_k, auprc_k = ref_auc(labels, np.nan_to_num(scores))
    f_k, fb_k, gb_k = ref_f_and_beta(labels, binary)
    assert _close(res.auroc_classes, auroc_k)
    assert _close(res.auprc_classes, auprc_k)
    assert _close(res.f_measure_classes, f_k)
    assert _close(res.auroc, _nanmean(auroc_k)) and _close(res.auprc, _nanmean(auprc_k))
    assert _close(res.f_measure, _nanmean(f_k))
    assert _close(res.f_beta_measure, _nanmean(fb_k))
    assert _close(res.g_beta_measure, _nanmean(gb_k))
    assert _close(res.accuracy, ref_accuracy(labels, binary))
    assert _close(
        res.challenge_metric, ref_challenge(weights, labels, binary, classes.index(normal))
    )
    assert _close(
        metrics.compute_modified_confusion_matrix(labels, binary),
        ref_modified_confusion(labels, binary),
    )


def _random_case(rng, n, c):
    labels = rng.random((n, c)) < rng.uniform(0.05, 0.5)
    labels[:, rng.integers(c)] = False  # a class with no positives
    levels = int(rng.choice([2, 3, 5, 0]))
    if levels:
        scores = rng.integers(0, levels + 1, size=(n, c)) / levels  # heavy ties
    else:
        scores = rng.random((n, c))
    scores[rng.random((n, c)) < 0.05] = np.nan
    binary = np.nan_to_num(scores) > 0.5
    w = rng.uniform(0, 1, size=(c, c))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 1.0)
    classes = [f"c{j}" for j in range(c - 1)] + ["n"]
    return labels, binary, scores, classes, w


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_matches_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 3, 10, 40]))
    c = int(rng.integers(2, 7))
    _check(*_random_case(rng, n, c))


def test_vectorised_matches_loop_reference_on_the_2020_table():
    rng = np.random.default_rng(100)
    classes, weights = metrics.load_weights()
    c = len(classes)
    labels = rng.random((30, c)) < 0.1
    scores = rng.integers(0, 4, size=(30, c)) / 3
    binary = scores > 0.5
    _check(labels, binary, scores, classes, weights, metrics.NORMAL_CLASS)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=n, max_size=n),
            st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=n, max_size=n),
            st.lists(
                st.lists(
                    st.sampled_from([0.0, 0.25, 0.5, 1.0, float("nan")]), min_size=3, max_size=3
                ),
                min_size=n,
                max_size=n,
            ),
        )
    )
)
def test_hypothesis_small_cases(case):
    labels, binary, scores = (np.array(x) for x in case)
    weights = np.array([[1.0, 0.3, 0.5], [0.3, 1.0, 0.2], [0.5, 0.2, 1.0]])
    _check(labels.astype(bool), binary.astype(bool), scores.astype(float), ["a", "b", "n"], weights)
