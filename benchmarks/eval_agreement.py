#!/usr/bin/env python
"""Agreement of ``evaluation/`` with the official Challenge 2020 scorer on random inputs.

    python benchmarks/eval_agreement.py --official /tmp/official/evaluate_12ECG_score.py \
        [--trials 200] [--seed 0] [--real ../shared/data/challenge]

The official script is NOT part of this project: pass the path of your own copy of
``evaluate_12ECG_score.py`` (physionetchallenges/evaluation-2020, master). It reads
``weights.csv`` from the current directory and uses ``np.bool``: it is executed here in a
temporary directory holding a copy of our weights.csv, with ``np.bool = bool`` set first.

Each trial writes a random label folder and output folder (multi-label truth with scored,
unscored and equivalent codes, empty-label records, classes without positives, NaN,
non-numeric and infinite scores, heavy ties, duplicated and equivalent output columns,
odd binary tokens, malformed output files), scores it with both, and records the absolute
difference of the 7 overall metrics and the 3 per-class arrays (NaN == NaN counts as equal;
NaN against a number counts as infinite). "Hazard" trials add inputs the official code cannot
read (2021 ``# Dx:`` headers, headers without a Dx line, non-UTF-8 bytes, ``#Dx:`` without a
space); they are skipped when it crashes, and listed. A "degenerate" trial (every label is
sinus rhythm only, so correct == inactive) checks the edge case where both return 0.0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation import evaluate as our_cli  # noqa: E402
from evaluation import metrics  # noqa: E402

OVERALL = list(our_cli.SCORE_COLUMNS)
PER_CLASS = ["AUROC (class)", "AUPRC (class)", "F-measure (class)"]


def load_official(path: Path):
    """Exec the official script into a namespace, with the numpy-2 ``np.bool`` shim."""
    if "bool" not in np.__dict__:  # numpy 1.24-1.26 removed np.bool (numpy 2 has it again)
        np.bool = bool
    namespace: dict = {"__name__": "official_evaluate_12ECG_score"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def run_official(ns, workdir: Path, labels: Path, outputs: Path):
    """Call the official ``evaluate_12ECG_score`` in ``workdir`` (it holds weights.csv)."""
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = ns["evaluate_12ECG_score"](str(labels), str(outputs))
    finally:
        os.chdir(cwd)
    (classes, auroc, auprc, auroc_k, auprc_k, acc, f, f_k, fb, gb, cm) = res
    overall = dict(zip(OVERALL, [auroc, auprc, acc, f, fb, gb, cm]))
    return list(classes), overall, [np.asarray(auroc_k), np.asarray(auprc_k), np.asarray(f_k)]


def run_ours(labels: Path, outputs: Path, tmp: Path):
    """Run our CLI (full path: files in, CSVs out) and read its CSVs back."""
    s_csv, c_csv = tmp / "scores.csv", tmp / "class_scores.csv"
    with contextlib.redirect_stderr(io.StringIO()):
        rc = our_cli.main([str(labels), str(outputs), str(s_csv), str(c_csv), "--quiet"])
    if rc != 0:
        raise RuntimeError(f"our scorer exited with {rc}")
    head, vals = s_csv.read_text().splitlines()[:2]
    overall = dict(zip(head.split(","), (float(x) for x in vals.split(","))))
    rows = [line.split(",") for line in c_csv.read_text().splitlines()]
    classes = rows[0][1:]
    per_class = [np.array([float(x) for x in r[1:]]) for r in rows[1:4]]
    return classes, overall, per_class


def absdiff(a, b) -> float:
    """Max absolute difference; NaN==NaN is 0, NaN vs number is inf."""
    a, b = np.atleast_1d(np.asarray(a, float)), np.atleast_1d(np.asarray(b, float))
    if a.shape != b.shape:
        return math.inf
    na, nb = np.isnan(a), np.isnan(b)
    if np.any(na != nb):
        return math.inf
    both = ~na
    if not both.any():
        return 0.0
    aa, bb = a[both], b[both]
    same_inf = np.isinf(aa) & (aa == bb)
    d = np.where(same_inf, 0.0, np.abs(aa - bb))
    return float(np.max(d)) if d.size else 0.0


# ---------------------------------------------------------------------------------------------
# Random inputs
# ---------------------------------------------------------------------------------------------


class Generator:
    """Random Challenge-style label and output folders."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        table = metrics.load_scoring_table()
        self.scored = sorted(table.code_to_index)  # 27 codes incl. equivalents
        unscored = metrics.load_abbreviations(ROOT / "evaluation" / "dx_mapping_unscored.csv")
        self.unscored = sorted(unscored)[:40] or ["195042002", "164951009"]
        self.prefixes = list(metrics.SOURCE_PREFIXES)

    def record_names(self, n: int) -> list[str]:
        """Unique record names with random source prefixes."""
        rng = self.rng
        return [f"{self.prefixes[rng.integers(len(self.prefixes))]}{i:05d}" for i in range(n)]

    def label_codes(self, pool: list[str]) -> list[str]:
        """One record's Dx codes: 0-4 scored codes from ``pool`` plus unscored codes."""
        rng = self.rng
        k = int(rng.choice([0, 1, 1, 1, 2, 2, 3, 4]))
        codes = list(rng.choice(pool, size=min(k, len(pool)), replace=False)) if k else []
        if rng.random() < 0.3:
            codes += list(rng.choice(self.unscored, size=int(rng.integers(1, 3))))
        if codes and rng.random() < 0.05:
            codes.append(codes[0])  # duplicated code
        return [str(c) for c in codes]

    def header(self, name: str, codes: list[str], hazard: str | None = None) -> bytes:
        """Header text; ``hazard`` picks a variant the official reader cannot handle."""
        lines = [
            f"{name} 12 500 5000 05-Feb-2020 11:39:16",
            f"{name}.mat 16+24 1000/mV 16 0 28 -1716 0 I",
            "#Age: 74",
            "#Sex: Male",
        ]
        dx = ",".join(codes)
        if self.rng.random() < 0.05 and codes:
            dx = dx.replace(",", ", ", 1)  # spaces after commas
        if self.rng.random() < 0.03:
            dx += ","  # empty code
        if hazard == "2021 '# Dx:' header":
            lines.append(f"# Dx: {dx}")
        elif hazard == "no Dx line":
            pass
        elif hazard == "'#Dx:' without space":
            lines.append(f"#Dx:{dx}")
        else:
            lines.append(f"#Dx: {dx}")
        lines += ["#Rx: Unknown", "#Hx: Unknown", "#Sx: Unknown"]
        data = ("\n".join(lines) + "\n").encode()
        if hazard == "non-UTF-8 header":
            data = data.replace(b"#Sex: Male", b"#Sex: M\xe4le")
        return data

    def output(self, name: str, tie_levels: int | None, malformed_p: float) -> str:
        """One output file's text (sometimes malformed)."""
        rng = self.rng
        codes = list(rng.permutation(self.scored))
        if rng.random() < 0.2:  # drop some scored codes
            codes = codes[: int(rng.integers(1, len(codes) + 1))]
        if rng.random() < 0.2:
            codes += list(rng.choice(self.unscored, size=int(rng.integers(1, 4))))
        if rng.random() < 0.05:
            codes.append(codes[int(rng.integers(len(codes)))])  # a code listed twice
        codes = [str(c) for c in codes]
        m = len(codes)
        if tie_levels:
            s = rng.integers(0, tie_levels + 1, size=m) / tie_levels
        else:
            s = rng.random(m)
        scores = [repr(float(x)) for x in s]
        binary = ["1" if x > 0.5 else "0" for x in s]
        for i in range(m):
            u = rng.random()
            if u < 0.04:
                scores[i] = "nan"
            elif u < 0.06:
                scores[i] = str(rng.choice(["abc", "", "--", "0.5.1", "NA"]))
            elif u < 0.065:
                scores[i] = str(rng.choice(["inf", "-inf"]))
            v = rng.random()
            if v < 0.06:
                tokens = ["True", "true", "T", "t", "False", "F", "yes", "", "2"]
                binary[i] = str(rng.choice(tokens))
        lines = [f"#{name}", ",".join(codes), ",".join(binary), ",".join(scores)]
        if rng.random() < malformed_p:
            kind = int(rng.integers(5))
            if kind == 0:
                lines = lines[:3]  # missing score line
            elif kind == 1:
                lines[3] = lines[3] + ",0.5"  # ragged
            elif kind == 2:
                lines = []  # empty file
            elif kind == 3:
                lines = [lines[0], lines[1], "", lines[2]]  # blank line and missing scores
            else:
                lines.append("1,2")  # ragged trailing line
        elif rng.random() < 0.05:
            lines.insert(2, "")  # blank line inside: still well formed for both
        return "\n".join(lines) + ("\n" if rng.random() < 0.8 else "")

    def trial(self, folder: Path, kind: str) -> dict:
        """Write one trial's ``labels/`` and ``outputs/``; returns a description."""
        rng = self.rng
        labels, outputs = folder / "labels", folder / "outputs"
        labels.mkdir()
        outputs.mkdir()
        n = int(rng.choice([1, 2, 5, 20, 60, 150]))
        pool = list(
            rng.choice(self.scored, size=int(rng.integers(3, len(self.scored) + 1)), replace=False)
        )
        tie_levels = int(rng.choice([0, 0, 2, 5, 10]))
        malformed_p = float(rng.choice([0.0, 0.0, 0.05, 0.2]))
        hazard = None
        if kind.startswith("hazard:"):
            hazard = kind.split(":", 1)[1]
        names = self.record_names(n)
        for i, name in enumerate(names):
            if kind == "degenerate":
                codes = [metrics.NORMAL_CLASS]
            else:
                codes = self.label_codes(pool)
            h = hazard if (hazard and i == n // 2) else None
            (labels / f"{name}.hea").write_bytes(self.header(name, codes, h))
            (outputs / f"{name}.csv").write_text(self.output(name, tie_levels, malformed_p))
        return {"n": n, "kind": kind}


HAZARDS = [
    "2021 '# Dx:' header",
    "no Dx line",
    "non-UTF-8 header",
    "'#Dx:' without space",
]


def main(argv=None) -> int:
    """Run the agreement trials and print the table of maximum differences."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official", type=Path, required=True, help="official evaluate_12ECG_score.py")
    p.add_argument("--trials", type=int, default=200, help="random trials (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--real",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "challenge",
        help="also score random outputs for this real header folder (skipped if absent)",
    )
    args = p.parse_args(argv)
    if not args.official.is_file():
        print(f"error: official scorer {args.official} not found", file=sys.stderr)
        return 1
    ns = load_official(args.official)
    rng = np.random.default_rng(args.seed)
    gen = Generator(rng)

    max_diff = {k: 0.0 for k in OVERALL + PER_CLASS}
    compared, skipped, notes = 0, {}, []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        workdir = tmp / "official_cwd"
        workdir.mkdir()
        shutil.copy(ROOT / "evaluation" / "weights.csv", workdir / "weights.csv")
        kinds = []
        for t in range(args.trials):
            if t % 10 == 9:
                kinds.append("hazard:" + HAZARDS[(t // 10) % len(HAZARDS)])
            else:
                kinds.append("random")
        kinds.append("degenerate")
        if args.real is not None and args.real.is_dir():
            kinds.append("real")
        for t, kind in enumerate(kinds):
            folder = tmp / f"trial{t}"
            folder.mkdir()
            if kind == "real":
                labels, outputs = args.real, folder / "outputs"
                outputs.mkdir()
                for h in sorted(args.real.glob("*.hea")):
                    (outputs / f"{h.stem}.csv").write_text(gen.output(h.stem, 10, 0.02))
            else:
                gen.trial(folder, kind)
                labels, outputs = folder / "labels", folder / "outputs"
            ours = run_ours(labels, outputs, folder)  # ours must never crash
            try:
                official = run_official(ns, workdir, labels, outputs)
            except Exception as exc:  # the official code's crash is a skip, not a failure
                key = f"{kind} ({type(exc).__name__})"
                skipped[key] = skipped.get(key, 0) + 1
                shutil.rmtree(folder)
                continue
            if official[0] != ours[0]:
                notes.append(f"trial {t}: class lists differ")
            diffs = {k: absdiff(official[1][k], ours[1][k]) for k in OVERALL}
            for name, a, b in zip(PER_CLASS, official[2], ours[2]):
                diffs[name] = absdiff(a, b)
            if kind == "degenerate":
                notes.append(
                    f"degenerate trial (correct == inactive): challenge metric official "
                    f"{official[1]['Challenge metric']!r}, ours {ours[1]['Challenge metric']!r}"
                )
            for k, v in diffs.items():
                max_diff[k] = max(max_diff[k], v)
            compared += 1
            shutil.rmtree(folder)
    elapsed = time.perf_counter() - t0

    print(
        f"Agreement with {args.official.name}: {compared} trials compared, "
        f"{sum(skipped.values())} skipped, {elapsed:.1f} s (seed {args.seed})"
    )
    print()
    print(f"{'metric':<20} {'max |ours - official|':>22}")
    for k in OVERALL + PER_CLASS:
        print(f"{k:<20} {max_diff[k]:>22.3g}")
    if skipped:
        print()
        print("Skipped (the official scorer crashed; ours scored them):")
        for k, v in sorted(skipped.items()):
            print(f"  {k}: {v}")
    for note in notes:
        print(note)
    worst = max(max_diff.values())
    ok = worst <= 1e-6 and compared > 0
    print()
    print("PASS" if ok else "FAIL", f"(worst {worst:.3g}, tolerance 1e-6, {compared} compared)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
