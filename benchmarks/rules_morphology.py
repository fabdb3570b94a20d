"""How separable the morphology and axis classes are, by rule score and measure.

On the shared records, for each of IRBBB, CRBBB|RBBB, LBBB, TAb, TInv, QAb, LAD and RAD: the
positives per source, and the AUROC (pooled and per source) of the rule's graded score at the
book's published thresholds and of the measurements its criteria read; the records whose
score reaches 0.5. A class the measurements cannot separate cannot be found on an unseen
source whatever its thresholds; a class they separate but that stays silent under leave one
source out is silenced by the operating thresholds (``python -m benchmarks.rules --protocols
loso`` prints those). For the axis classes, also the labelled and unlabelled records of each
source by band of the measured frontal QRS axis (:data:`AXIS_BANDS`): where a source draws
its label's line (one gives LAD from about 0 degrees, another from -30) is a convention of
its readers, which no threshold learned on the other sources can know.

Usage::

    python -m benchmarks.rules_morphology [--data DIR] [--cache FILE]

``--cache`` is the measurement cache of ``benchmarks.rules`` (the same file serves both).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from team_code.classifiers.rulebook import _CONTIGUOUS as CONTIGUOUS
from team_code.classifiers.rulebook import _T_LEADS as T_LEADS

REPO = Path(__file__).resolve().parents[1]
RBBB_KEYS = (
    "qrs_ms",
    "qrs_terminal_ms",
    "global_qrs_ms",
    "V1_rprime_mv",
    "V2_rprime_mv",
    "V1_term_mv",
    "-I_term_mv",
    "-V6_term_mv",
)
#: Class -> the measurements shown (``-`` negates: larger means more of the finding).
KEYS = {
    "IRBBB": RBBB_KEYS,
    "CRBBB|RBBB": RBBB_KEYS,
    "LBBB": ("qrs_ms", "-V1_qrs_area_mvms", "I_term_mv", "V6_term_mv", "I_q_mv", "V6_q_mv"),
    "TAb": ("leads with T < 0.1 mV", "-lowest T"),
    "TInv": ("leads with T < 0.1 mV", "-lowest T"),
    "QAb": ("longest Q of two contiguous leads", "deepest Q of two contiguous leads"),
    "LAD": ("-qrs_axis_deg",),
    "RAD": ("qrs_axis_deg",),
}
#: Bands of the frontal QRS axis (degrees; lower bound inclusive) for the axis classes' table:
#: the published left and right axis deviation cut-offs (-30, +90) and 0 and +30, where
#: other conventions draw them.
AXIS_BANDS: tuple[tuple[float, float], ...] = (
    (-180.0, -30.0),
    (-30.0, 0.0),
    (0.0, 30.0),
    (30.0, 90.0),
    (90.0, 180.01),
)


def axis_band_counts(axis_deg, positive, sources, order) -> list[tuple[str, list, list]]:
    """Per source: the labelled and the unlabelled records in each of :data:`AXIS_BANDS`
    (and those without a measured axis last): ``[(source, [labelled...], [unlabelled...])]``."""
    axis = np.asarray(axis_deg, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    sources = np.asarray(sources)
    bands = [(axis >= lo) & (axis < hi) for lo, hi in AXIS_BANDS] + [~np.isfinite(axis)]
    out = []
    for s in order:
        m = sources == s
        out.append(
            (s, [int((b & m & y).sum()) for b in bands], [int((b & m & ~y).sum()) for b in bands])
        )
    return out


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ.get("ECG_KIT_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default, help="shared data folder")
    parser.add_argument("--cache", type=Path, help="measurement cache file (JSON)")
    return parser


def _derived(column) -> dict[str, np.ndarray]:
    """The T and Q summaries of the T-wave and Q-wave rules' leads."""
    t = np.stack([column(f"{lead}_lead_t_mv") for lead in T_LEADS], 1)
    seen = np.isfinite(t).any(1)
    # a pair counts only where both of its leads were measured (NaN propagates)
    q_ms = np.stack(
        [np.minimum(column(f"{a}_lead_q_ms"), column(f"{b}_lead_q_ms")) for a, b in CONTIGUOUS],
        1,
    )
    q_mv = np.stack(
        [np.maximum(column(f"{a}_q_mv"), column(f"{b}_q_mv")) for a, b in CONTIGUOUS], 1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows with nothing measured: NaN
        return {
            "leads with T < 0.1 mV": np.where(seen, np.nansum(t < 0.1, 1), np.nan),
            "-lowest T": np.where(seen, -np.nanmin(np.where(seen[:, None], t, 0), 1), np.nan),
            "longest Q of two contiguous leads": np.nanmax(q_ms, 1),
            "deepest Q of two contiguous leads": -np.nanmin(q_mv, 1),
        }


def main(args: argparse.Namespace) -> int:
    """Print one table per class."""
    from benchmarks.challenge import default_folders, load_pool, ordered_sources
    from benchmarks.rules import auroc, measure_all
    from team_code.classifiers.rulebook import evaluate_rules
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import record_source

    records = load_pool([args.data / f.name for f in default_folders()])
    values = measure_all(records, args.cache)
    names = list(records.names)
    table = scored_classes()
    classes = list(table.codes)
    truth = label_matrix(records.labels, classes)
    sources = np.array([record_source(n) for n in names])
    order = ordered_sources(sources.tolist())
    abbreviations = [table.abbreviation(c) for c in classes]
    rows = [values[n] for n in names]

    def column(key: str) -> np.ndarray:
        return np.array([float(v.get(key, np.nan)) for v in rows])

    derived = _derived(column)
    for name, keys in KEYS.items():
        if name not in abbreviations:
            continue
        j = abbreviations.index(name)
        y, code = truth[:, j], classes[j]
        if not y.any():
            print(f"\n### {name}: no positive record")
            continue
        per = ", ".join(
            f"{s} {int(y[sources == s].sum())}/{int((sources == s).sum())}"
            for s in order
            if y[sources == s].any()
        )
        print(f"\n### {name} ({code}): {int(y.sum())} positives ({per})\n")
        score = np.array([evaluate_rules(v, None, [code])[code]["score"] for v in rows])
        print("| evidence | pooled | " + " | ".join(order) + " | median pos | median neg |")
        print("|---|---:|" + "---:|" * len(order) + "---:|---:|")
        shown = [("rule score (published thresholds)", score)]
        for key in keys:
            if key in derived:
                shown.append((key, derived[key]))
            elif key.startswith("-"):
                shown.append((key, -column(key[1:])))
            else:
                shown.append((key, column(key)))
        for label, v in shown:
            cells = [
                f"{auroc(y[m], v[m]):.2f}" if y[m].any() and (~y[m]).any() else "-"
                for m in (sources == s for s in order)
            ]
            print(
                f"| {label} | {auroc(y, v):.2f} | " + " | ".join(cells) + " | "
                f"{np.nanmedian(v[y]):.3g} | {np.nanmedian(v[~y]):.3g} |"
            )
        fired = score >= 0.5
        print(
            f"\nscore >= 0.5: {int((fired & y).sum())} of {int(y.sum())} positives, "
            f"{int((fired & ~y).sum())} negatives ("
            + ", ".join(f"{s} {int((fired & ~y & (sources == s)).sum())}" for s in order)
            + ")"
        )
        if "qrs_axis_deg" in {k.lstrip("-") for k in keys}:
            _print_axis_bands(name, column("qrs_axis_deg"), y, sources, order)
    return 0


def _print_axis_bands(name, axis, y, sources, order) -> None:
    heads = [f"[{lo:+.0f}, {hi:+.0f})" for lo, hi in AXIS_BANDS] + ["not measured"]
    heads[len(AXIS_BANDS) - 1] = f"[{AXIS_BANDS[-1][0]:+.0f}, +180]"
    print(f"\nmeasured QRS axis (degrees): records labelled {name} / not labelled, per source\n")
    print("| source | " + " | ".join(heads) + " |")
    print("|---|" + "---:|" * len(heads))
    for s, pos, neg in axis_band_counts(axis, y, sources, order):
        print(f"| {s} | " + " | ".join(f"{p} / {n}" for p, n in zip(pos, neg)) + " |")


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
