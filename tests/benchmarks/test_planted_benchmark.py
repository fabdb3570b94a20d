"""The planted-class benchmark's paired interval of the default's gain."""

import numpy as np

from benchmarks.planted import paired_gain_interval
from team_code.classifiers.thresholds import challenge_score
from team_code.context import Task


def _row(truth, predicted, task):
    return {"_truth": truth, "_predicted": predicted, "_classes": (task.classes, task.scored)}


def test_the_gain_interval_is_paired_and_brackets_the_gain():
    task = Task()
    rng = np.random.default_rng(3)
    truth = rng.random((60, len(task.classes))) < 0.15
    noisy = truth ^ (rng.random(truth.shape) < 0.1)
    rows = [_row(truth, noisy, task), _row(truth, truth.copy(), task)]
    gain = challenge_score(truth, truth, task.classes, task.scored) - challenge_score(
        truth, noisy, task.classes, task.scored
    )
    low, high = paired_gain_interval(rows, 300)
    assert 0 < low <= gain <= high
    # the same decisions on the same resamples differ by exactly nothing
    same = paired_gain_interval([rows[0], _row(truth, noisy.copy(), task)], 300)
    assert same == (0.0, 0.0)
