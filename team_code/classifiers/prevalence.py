"""The floor every report compares against: scores are each class's training prevalence.

Every record gets the same scores, so a class is either predicted for every record or for
none; which classes are predicted is chosen on the training data to maximise the challenge
metric (in practice: sinus rhythm, the commonest class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from team_code.classifiers.base import Classifier
from team_code.classifiers.thresholds import NEVER, prevalence_thresholds
from team_code.context import RunContext, Task
from team_code.data.records import Record


class PrevalenceClassifier(Classifier):
    """Constant scores equal to the training prevalence of each class."""

    name = "prevalence"

    def fit(self, records: Sequence[Record], task: Task, ctx: RunContext | None = None):
        self._begin(task, ctx)
        truth = self.label_matrix(records)
        if len(truth) == 0:
            raise ValueError("prevalence: no training records")
        # Above the prevalence: never predicted; at or below: predicted for every record.
        self.prevalence_, self.thresholds_ = prevalence_thresholds(
            truth, self.classes_, self.task_.scored
        )
        return self

    def predict_proba(self, records: Sequence[Record]) -> np.ndarray:
        return np.tile(self.prevalence_, (len(records), 1))

    def _save_state(self, folder) -> None:
        from team_code.fileio import save_json

        save_json(folder / "prevalence.json", {"prevalence": self.prevalence_})

    def _load_state(self, folder) -> None:
        from team_code.fileio import load_json

        self.prevalence_ = np.asarray(load_json(folder / "prevalence.json")["prevalence"])

    def summary(self) -> dict:
        return {"predicted": [c for c, t in zip(self.classes_, self.thresholds_) if t < NEVER]}
