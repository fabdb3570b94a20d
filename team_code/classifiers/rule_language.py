"""The rule language: thresholds in physical units, graded conditions, and one rule's score.

A rule (:class:`Rule`) is a class's clinical criterion written as graded logic over one
record's measurements. Scores are graded, not 0/1: a condition "value above threshold" scores
``1 / (1 + exp(-(value - threshold) / scale))`` (0.5 at the threshold); "and" is the product,
"or" the maximum, "not" the complement (:meth:`Context.absent`: the terms inside count
*against* the diagnosis, and the explanation says so). A condition whose measurement is
missing (NaN) scores 0, and the explanation lists it under ``missing``. Every threshold
carries its published value, the clinically stated bounds that tuning may not leave, and
their source (:class:`Threshold`).

The rules themselves are the rule book (:mod:`team_code.classifiers.rulebook`); learning their
thresholds is the classifier's (:mod:`team_code.classifiers.rules`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

__all__ = ["Context", "Rule", "Threshold", "score_rule"]


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A rule threshold in physical units: its published value and the bounds tuning keeps."""

    value: float  # published (knowledge-base) value
    scale: float  # width of the logistic transition, same unit
    lo: float  # lowest clinically stated value (tuning bound)
    hi: float  # highest clinically stated value (tuning bound)
    unit: str = ""  # unit, for the explanation
    source: str = ""  # where the value and the bounds are stated

    def __post_init__(self):
        if not self.lo <= self.value <= self.hi or self.scale <= 0:
            raise ValueError(
                f"threshold {self.value} must lie in its bounds [{self.lo}, {self.hi}] "
                f"with a positive scale ({self.scale})"
            )


class Context:
    """Evaluates graded conditions on one record's measurements and records them."""

    def __init__(self, values: dict, thresholds: dict[str, float], specs: dict[str, Threshold]):
        self.values = values
        self.thresholds = thresholds
        self.specs = specs
        self.terms: list[dict] = []
        self.missing: list[str] = []
        self.polarity = 1  # -1 inside :meth:`absent`: a met condition counts against

    def absent(self, condition: Callable[[Context], float]) -> float:
        """Graded "not condition": ``1 - condition``; its terms count against the diagnosis
        when met (and for it when not met)."""
        self.polarity = -self.polarity
        try:
            return 1.0 - condition(self)
        finally:
            self.polarity = -self.polarity

    def value(self, key: str) -> float:
        v = self.values.get(key, math.nan)
        return float(v) if v is not None else math.nan

    def _term(self, key: str, op: str, name: str, sign: float, value: float | None = None) -> float:
        v = self.value(key) if value is None else value
        thr, spec = self.thresholds[name], self.specs[name]
        if not math.isfinite(v):
            self.missing.append(key)
            score = 0.0
        else:
            z = sign * (v - thr) / spec.scale
            score = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
        if not math.isfinite(v):
            role = "missing"
        else:
            role = "for" if (score >= 0.5) == (self.polarity > 0) else "against"
        self.terms.append(
            {
                "measure": key,
                "value": v if math.isfinite(v) else None,
                "op": op,
                "threshold": thr,
                "published": spec.value,
                "bounds": [spec.lo, spec.hi],
                "source": spec.source,
                "unit": spec.unit,
                "score": score,
                "role": role,
            }
        )
        return score

    def above(self, key: str, name: str, value: float | None = None) -> float:
        """Graded ``measure > threshold``."""
        return self._term(key, ">", name, 1.0, value)

    def below(self, key: str, name: str, value: float | None = None) -> float:
        """Graded ``measure < threshold``."""
        return self._term(key, "<", name, -1.0, value)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One class's rule: criterion text, thresholds and the graded logic."""

    abbreviation: str  # class abbreviation
    code: str  # representative SNOMED CT code
    criterion: str  # the clinical criterion and its source
    thresholds: dict  # name -> Threshold
    primary: str  # the threshold that learning tunes, within its bounds
    logic: Callable[[Context], float]  # graded score from a context
    # thresholds that move with another (rule code, threshold name) when tuning moves it,
    # keeping their published distance from it within their own bounds: the female QTc limit
    # 10 ms above the male one, incomplete RBBB's upper width at complete RBBB's lower one
    follows: dict = dataclasses.field(default_factory=dict)


def score_rule(rule: Rule, values: dict, thresholds: dict[str, float]) -> dict:
    """One rule on one record's measurements, with ``thresholds`` (name -> value) for its
    thresholds: ``{"score", "terms", "missing"}``, the score clipped to [0, 1]."""
    ctx = Context(values, thresholds, rule.thresholds)
    score = float(min(1.0, max(0.0, rule.logic(ctx))))
    return {"score": score, "terms": ctx.terms, "missing": sorted(set(ctx.missing))}
