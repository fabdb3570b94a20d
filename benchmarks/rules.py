"""Benchmark the rule-based classifier on the real Challenge records, and its AF detector.

Tables printed:

1. Challenge metric and per-class F-measure (with counts) on ``challenge/``: ``prevalence``
   (cross-validated), the knowledge-base rules (``tune=False``, no training: all records) and
   the tuned rules (k-fold cross-validation, tuning inside the training folds, records with
   identical signals kept in one fold), plus the median seconds per record of the whole rule
   pipeline (measurement + rules) on one core.
2. The AF/AFL detector of Bortolan et al. (zero crossings of the first derivative of lead II
   between QRS complexes) on the CPSC 2021 paroxysmal-AF records: AUROC over 10-s windows
   labelled AF (more than half of the window inside an ``(AFIB`` episode) or non-AF (no AF at
   all), beside the RR irregularity and their product.

Usage::

    python benchmarks/rules.py [--data DIR] [--folds 5] [--seed 0] [--skip-af]

``--data`` is the shared data folder (``$ECG_KIT_DATA`` or ``<repo>/../shared/data``).
Every record is measured once; tuning and scoring reuse the measurements.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("ECG_KIT_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default, help="shared data folder")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    parser.add_argument("--seed", type=int, default=0, help="fold assignment seed")
    parser.add_argument("--skip-af", action="store_true", help="skip the CPSC 2021 AF table")
    return parser


def grouped_folds(digests: list[str], n_folds: int, seed: int) -> np.ndarray:
    """Fold index per record; records with identical signal files share a fold."""
    unique = sorted(set(digests))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    fold_of = {unique[k]: i % n_folds for i, k in enumerate(order)}
    return np.array([fold_of[d] for d in digests])


def auroc(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN scores are left out."""
    ok = np.isfinite(s)
    y, s = y[ok].astype(bool), s[ok]
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def challenge_table(data: Path, n_folds: int, seed: int) -> None:
    """Table 1: prevalence vs knowledge-base rules vs tuned rules on challenge/."""
    from evaluation.metrics import compute_challenge_metric, compute_f_measure
    from team_code.classifiers.prevalence import PrevalenceClassifier
    from team_code.classifiers.rules import RulesClassifier
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import RecordSet

    records = RecordSet.from_folder(data / "challenge")
    scored = scored_classes()
    classes = list(scored.codes)
    truth = label_matrix(records.labels, classes)
    digests = [
        hashlib.md5((h.path.parent / h.signal_file).read_bytes(), usedforsecurity=False).hexdigest()
        for h in records.headers
    ]
    folds = grouped_folds(digests, n_folds, seed)
    kb = RulesClassifier(RulesClassifier.Config(tune=False)).fit([], classes)
    values, seconds = [], []
    for i in range(len(records)):
        record = records[i]
        start = time.perf_counter()
        v = kb.measure(record)["values"]
        kb._scores_from_values([v])
        seconds.append(time.perf_counter() - start)
        values.append(v)
    kb_scores = kb._scores_from_values(values)
    tuned_scores = np.zeros_like(kb_scores)
    prev_binary = np.zeros_like(truth)
    for k in range(n_folds):
        train, test = folds != k, folds == k
        model = RulesClassifier(RulesClassifier.Config(tune=True))
        model.classes_ = tuple(classes)
        model.rule_thresholds_ = {c: dict(t) for c, t in kb.rule_thresholds_.items()}
        model.tuning_ = {}
        model.thresholds_ = np.full(len(classes), 0.5)
        model.tune_on_values([values[i] for i in np.flatnonzero(train)], truth[train])
        tuned_scores[test] = model._scores_from_values([values[i] for i in np.flatnonzero(test)])
        prev = PrevalenceClassifier().fit([records[i] for i in np.flatnonzero(train)], classes)
        prev_binary[test] = np.broadcast_to(
            prev.thresholds_ <= prev.prevalence_, (test.sum(), len(classes))
        )

    weights = scored.weights
    rows = {
        "prevalence (CV)": prev_binary,
        "rules, knowledge base": kb_scores >= 0.5,
        f"rules, tuned ({n_folds}-fold CV)": tuned_scores >= 0.5,
    }
    print(f"## Rules on {data / 'challenge'}: {len(records)} records, {n_folds} grouped folds\n")
    print("| model | challenge metric | macro F1 |")
    print("|---|---:|---:|")
    f1s = {}
    for name, binary in rows.items():
        cm = compute_challenge_metric(weights, truth, binary, classes)
        macro, per = compute_f_measure(truth, binary)
        f1s[name] = per
        print(f"| {name} | {cm:.3f} | {macro:.3f} |")
    print("\nPer-class F1 (n = positives in the 231 records; rhythm classes first):\n")
    names = list(rows)
    print("| class | n | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    rhythm = ["NSR", "SB", "STach", "AF", "IAVB"]
    order = [scored.abbreviations.index(a) for a in rhythm] + [
        j for j, a in enumerate(scored.abbreviations) if a not in rhythm
    ]
    for j in order:
        n = int(truth[:, j].sum())
        cells = " | ".join("-" if np.isnan(f1s[m][j]) else f"{f1s[m][j]:.3f}" for m in names)
        print(f"| {scored.abbreviations[j]} | {n} | {cells} |")
    print(
        f"\nRule pipeline time (measure + rules, one record, one core): median "
        f"{np.median(seconds):.3f} s, 90th percentile {np.percentile(seconds, 90):.3f} s, "
        f"max {np.max(seconds):.3f} s over {len(seconds)} records"
    )


def af_table(data: Path) -> None:
    """Table 2: AF detector on CPSC 2021 10-s windows."""
    import wfdb

    from team_code.dsp import filters, qrs, rhythm

    folder = data / "cpsc2021"
    rows = []
    for hea in sorted(folder.glob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        ann = wfdb.rdann(str(hea.with_suffix("")), "atr")
        fs = float(rec.fs)
        n = rec.p_signal.shape[0]
        lead = rec.sig_name.index("II") if "II" in rec.sig_name else 0
        x = np.nan_to_num(rec.p_signal.T.astype(float))
        xf = filters.clean(x, fs)
        af = np.zeros(n, bool)
        state, since = False, 0
        for s, note in zip(ann.sample, ann.aux_note):
            note = note.strip("\x00 ")
            if note.startswith("("):
                af[since:s] = state
                state, since = note.startswith("(AF"), s
        af[since:] = state
        r_all = qrs.detect(xf, fs)
        win = int(10 * fs)
        for a in range(0, n - win + 1, win):
            frac = af[a : a + win].mean()
            if 0 < frac <= 0.5:
                continue
            r = r_all[(r_all >= a) & (r_all < a + win)] - a
            if r.size < 4:
                continue
            zc = rhythm.derivative_zero_crossings(xf[lead, a : a + win], fs, r)
            irr = rhythm.rr_statistics(r, fs)["rr_irregularity"]
            rows.append((hea.stem, frac > 0.5, zc, irr))
    y = np.array([r[1] for r in rows])
    zc = np.array([r[2] for r in rows], float)
    irr = np.array([r[3] for r in rows], float)
    n_rec = len({r[0] for r in rows})
    print(f"\n## AF detector on {folder}: {len(rows)} 10-s windows of {n_rec} records")
    print(f"({int(y.sum())} AF, {int((~y).sum())} non-AF; windows with 0-50 % AF left out)\n")
    print("| feature | AUROC | median AF | median non-AF |")
    print("|---|---:|---:|---:|")
    for name, s in [
        ("zero crossings of d/dt lead II, per s (Bortolan 2020)", zc),
        ("RR irregularity (median abs successive diff / median RR)", irr),
        ("product of the two", zc * irr),
    ]:
        print(
            f"| {name} | {auroc(y, s):.3f} | {np.nanmedian(s[y]):.3f} | {np.nanmedian(s[~y]):.3f} |"
        )


def main(args: argparse.Namespace) -> int:
    """Print the tables."""
    challenge_table(args.data, args.folds, args.seed)
    if not args.skip_af:
        af_table(args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
