#!/usr/bin/env python
"""Agreement of ``evaluation/`` with the official Challenge 2020 or 2021 scorer on random inputs.

    python -m benchmarks.eval_agreement --official /tmp/official/evaluate_12ECG_score.py \
        [--trials 200] [--seed 0] [--real ../shared/data/challenge]
    python -m benchmarks.eval_agreement --task 2021 \
        --official /tmp/evaluation-2021/evaluate_model.py [--trials 200] [--seed 0]

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

``--task 2021``: the official ``evaluate_model.py`` (physionetchallenges/evaluation-2021,
master; it imports ``helper_code.py`` from its own folder and reads ``weights.csv`` from the
current directory, here a copy of our ``evaluation/2021/weights.csv``) against
``evaluate.py --task 2021``. Trials add ``a|b`` output columns (either order, and columns
joining codes of two classes), missing classes, 2021 header lines (``16x1+24
1000.0(0)/mV``, no date), several Dx lines, numbers equal to 1 as binary outputs ('1.0',
'1e0'), infinite scores, rows of different lengths and record lines that are not ``#...``.
Where the official code cannot read an input it either crashes or silently reads something
else: ``# Dx:`` headers (the 2021 release's own dialect) and ``#Dx:`` without a space give it
no labels, non-UTF-8 bytes crash it, and so do output files with fewer than four lines or a
scored column without its label or score (ours scores those all-negative with a warning). Such
trials are compared against the official scorer on a twin folder where each such file is
written the way it reads it (``#Dx: `` headers, an empty all-negative output), and listed
apart with what the official scorer did on the originals.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from evaluation import evaluate as our_cli
from evaluation import metrics

ROOT = Path(__file__).resolve().parent.parent

PER_CLASS = ["AUROC (class)", "AUPRC (class)", "F-measure (class)"]
#: The official entry point of each year.
ENTRY = {"2020": "evaluate_12ECG_score", "2021": "evaluate_model"}


def load_official(path: Path, task: str = "2020"):
    """Exec the official script into a namespace, with the numpy-2 ``np.bool`` shim.

    The 2021 script imports ``helper_code`` from its own folder.
    """
    if "bool" not in np.__dict__:  # numpy 1.24-1.26 removed np.bool (numpy 2 has it again)
        np.bool = bool
    if task == "2021":  # its `from helper_code import *` reads the module beside it
        helper = importlib.util.spec_from_file_location(
            "helper_code", path.resolve().parent / "helper_code.py"
        )
        sys.modules["helper_code"] = importlib.util.module_from_spec(helper)
        helper.loader.exec_module(sys.modules["helper_code"])
    namespace: dict = {"__name__": f"official_{ENTRY[task]}"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace


def run_official(ns, workdir: Path, labels: Path, outputs: Path, task: str = "2020"):
    """Call the official scorer in ``workdir`` (it holds weights.csv)."""
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = ns[ENTRY[task]](str(labels), str(outputs))
    finally:
        os.chdir(cwd)
    if task == "2021":
        (classes, auroc, auprc, auroc_k, auprc_k, acc, f, f_k, cm) = res
        values = [auroc, auprc, acc, f, cm]
        classes = [frozenset(c) for c in classes]  # sets of equivalent codes
    else:
        (classes, auroc, auprc, auroc_k, auprc_k, acc, f, f_k, fb, gb, cm) = res
        values = [auroc, auprc, acc, f, fb, gb, cm]
        classes = list(classes)
    overall = dict(zip(metrics.SCORE_COLUMNS[task], values))
    return classes, overall, [np.asarray(auroc_k), np.asarray(auprc_k), np.asarray(f_k)]


def run_ours(labels: Path, outputs: Path, tmp: Path, task: str = "2020"):
    """Run our CLI (full path: files in, CSVs out) and read its CSVs back."""
    s_csv, c_csv = tmp / "scores.csv", tmp / "class_scores.csv"
    args = [str(labels), str(outputs), str(s_csv), str(c_csv), "--quiet", "--task", task]
    with contextlib.redirect_stderr(io.StringIO()):
        rc = our_cli.main(args)
    if rc != 0:
        raise RuntimeError(f"our scorer exited with {rc}")
    head, vals = s_csv.read_text().splitlines()[:2]
    overall = dict(zip(head.split(","), (float(x) for x in vals.split(","))))
    rows = [line.split(",") for line in c_csv.read_text().splitlines()]
    classes = rows[0][1:]
    if task == "2021":
        classes = [frozenset(c.split("|")) for c in classes]
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

HAZARDS_2021 = [
    "'# Dx:' header",
    "'#Dx:' without space",
    "non-UTF-8 header",
    "no Dx line",
    "output of three lines",
    "scored column without a score",
]


class Generator2021(Generator):
    """Random 2021-style folders; ``trial`` also writes the twin the official scorer reads."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        table = metrics.load_task_table("2021")
        self.groups = [table.group(j) for j in range(len(table.classes))]
        self.scored = list(table.all_codes)  # 30 codes incl. every a|b member
        unscored = metrics.load_abbreviations(
            ROOT / "evaluation" / "2021" / "dx_mapping_unscored.csv"
        )
        self.unscored = sorted(unscored)[:40]
        self.prefixes = list(metrics.SOURCE_PREFIXES)

    def header_2021(self, name: str, codes: list[str], hazard: str | None) -> tuple[bytes, bytes]:
        """``(ours, twin)`` header bytes: the twin is what the official reader understands."""
        rng = self.rng
        if rng.random() < 0.5:  # the 2021 release's record and signal lines
            lines = [f"{name} 12 500 5000", f"{name}.mat 16x1+24 1000.0(0)/mV 16 0 -68 1250 0 I"]
        else:
            lines = [
                f"{name} 12 500 5000 05-Feb-2020 11:39:16",
                f"{name}.mat 16+24 1000/mV 16 0 28 -1716 0 I",
            ]
        lines += ["#Age: 61", "#Sex: Female"]
        if codes and rng.random() < 0.15:  # the codes spread over two Dx lines
            cut = int(rng.integers(1, len(codes) + 1))
            parts = [codes[:cut], codes[cut:]]
        else:
            parts = [codes]
        dx_lines = [",".join(part) for part in parts]
        if rng.random() < 0.05 and codes:
            dx_lines[0] = dx_lines[0].replace(",", " , ", 1)
        prefix = {"'# Dx:' header": "# Dx: ", "'#Dx:' without space": "#Dx:"}.get(hazard, "#Dx: ")
        ours = [*lines, *(prefix + d for d in dx_lines), "#Rx: Unknown"]
        twin = [*lines, *("#Dx: " + d for d in dx_lines), "#Rx: Unknown"]
        if hazard == "no Dx line":
            ours = twin = [*lines, "#Rx: Unknown"]
        end = "\r\n" if rng.random() < 0.05 else "\n"  # Windows line ends now and then
        data_ours = (end.join(ours) + end).encode()
        data_twin = (end.join(twin) + end).encode()
        if hazard == "non-UTF-8 header":
            data_ours = data_ours.replace(b"#Sex: Female", b"#Sex: F\xe9male")
        return data_ours, data_twin

    def column(self, group: tuple[str, ...]) -> list[str]:
        """How an output names one class: one code, ``a|b`` in either order, or two columns."""
        rng = self.rng
        if len(group) == 1:
            return [group[0]]
        u = rng.random()
        if u < 0.3:
            return [group[0]]
        if u < 0.5:
            return [group[1]]
        if u < 0.7:
            return ["|".join(group)]
        if u < 0.85:
            return ["|".join(reversed(group))]
        return list(group)  # both codes, each in its own column (averaged)

    def output_2021(self, name: str, tie_levels: int, hazard: str | None) -> tuple[str, str]:
        """``(ours, twin)`` output texts; the twin of a malformed file is an empty output."""
        rng = self.rng
        groups = [self.groups[i] for i in rng.permutation(len(self.groups))]
        if rng.random() < 0.3:  # missing classes
            groups = groups[: int(rng.integers(1, len(groups) + 1))]
        codes = [c for g in groups for c in self.column(g)]
        if rng.random() < 0.1 and len(codes) > 1:  # one column naming codes of two classes
            codes[0] = f"{codes[0]}|{codes[1]}"
        if rng.random() < 0.2:
            codes += list(rng.choice(self.unscored, size=int(rng.integers(1, 4))))
        if rng.random() < 0.05:
            codes.append(codes[int(rng.integers(len(codes)))])
        codes = [str(c) for c in codes]
        m = len(codes)
        s = rng.integers(0, tie_levels + 1, m) / tie_levels if tie_levels else rng.random(m)
        scores = [repr(float(x)) for x in s]
        binary = ["1" if x > 0.5 else "0" for x in s]
        odd_scores = ["nan", "inf", "-inf", "abc", "", "1e400", " 0.25 "]
        odd_binary = ["1.0", "1e0", " 1", "01", "True", "t", "T", "F", "2", "nan", "", "0.5"]
        for i in range(m):
            if rng.random() < 0.08:
                scores[i] = str(rng.choice(odd_scores))
            if rng.random() < 0.1:
                binary[i] = str(rng.choice(odd_binary))
        first = f"#{name}" if rng.random() < 0.9 else name  # the record line, whatever it holds
        lines = [first, ",".join(codes), ",".join(binary), ",".join(scores)]
        u = rng.random()
        if u < 0.05:
            lines.insert(1, "")  # shifts the lines: no class line, so no class is output
        elif u < 0.1:
            lines[3] += ",0.5,0.5"  # ragged but harmless: extra scores
        if hazard == "output of three lines":
            lines = lines[:3]
        elif hazard == "scored column without a score":
            lines = [first, ",".join(codes[:1] * 2), "1,1", "0.5"]
        text = "\n".join(lines) + ("\n" if rng.random() < 0.8 else "")
        if rng.random() < 0.05:
            text = text.replace("\n", "\r\n")  # Windows line ends
        twin = f"#{name}\n\n\n\n" if hazard in HAZARDS_2021[4:] else text
        return text, twin

    def trial(self, folder: Path, kind: str) -> dict:
        """Write ``labels/``, ``outputs/`` and, where some file is a hazard, their twins."""
        rng = self.rng
        dirs = [folder / d for d in ("labels", "outputs", "twin_labels", "twin_outputs")]
        for d in dirs:
            d.mkdir()
        n = int(rng.choice([1, 2, 5, 20, 60, 150]))
        pool = list(rng.choice(self.scored, size=int(rng.integers(3, 31)), replace=False))
        tie_levels = int(rng.choice([0, 0, 2, 5, 10]))
        hazard = kind.split(":", 1)[1] if kind.startswith("hazard:") else None
        for i, name in enumerate(self.record_names(n)):
            codes = [metrics.NORMAL_CLASS] if kind == "degenerate" else self.label_codes(pool)
            h = hazard if (hazard and i == n // 2) else None
            files = [
                *self.header_2021(name, codes, h),
                *self.output_2021(name, tie_levels, h),
            ]
            (dirs[0] / f"{name}.hea").write_bytes(files[0])
            (dirs[2] / f"{name}.hea").write_bytes(files[1])
            (dirs[1] / f"{name}.csv").write_text(files[2])
            (dirs[3] / f"{name}.csv").write_text(files[3])
        return {"n": n, "kind": kind, "twin": hazard is not None and hazard != "no Dx line"}

    def real_trial(self, folder: Path, real: Path) -> dict:
        """Random outputs for a real header folder; headers written ``# Dx:`` get a twin."""
        dirs = [folder / d for d in ("labels", "outputs", "twin_labels", "twin_outputs")]
        for d in dirs[1:]:
            d.mkdir()
        twin = False
        for h in sorted(real.glob("*.hea")):
            data = h.read_bytes()
            fixed = data.replace(b"\n# Dx:", b"\n#Dx:")
            twin |= fixed != data
            (dirs[2] / h.name).write_bytes(fixed)
            text, _ = self.output_2021(h.stem, 10, None)
            (dirs[1] / f"{h.stem}.csv").write_text(text)
            (dirs[3] / f"{h.stem}.csv").write_text(text)
        return {"labels": real, "twin": twin}


def compare(official, ours, columns) -> dict[str, float]:
    """Max abs difference per overall and per-class metric (inf where the classes differ)."""
    diffs = {k: absdiff(official[1][k], ours[1][k]) for k in columns}
    for name, a, b in zip(PER_CLASS, official[2], ours[2]):
        diffs[name] = absdiff(a, b)
    if official[0] != ours[0]:
        diffs = dict.fromkeys(diffs, math.inf)
    return diffs


def trial_kinds(n_trials: int, hazards: list[str]) -> list[str]:
    """Every tenth trial a hazard (in turn), the rest random, then a degenerate one."""
    kinds = [
        "hazard:" + hazards[(t // 10) % len(hazards)] if t % 10 == 9 else "random"
        for t in range(n_trials)
    ]
    return [*kinds, "degenerate"]


def main(argv=None) -> int:
    """Run the agreement trials and print the table of maximum differences."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--official",
        type=Path,
        required=True,
        help="official evaluate_12ECG_score.py (2020) or evaluate_model.py (2021)",
    )
    p.add_argument("--task", choices=metrics.TASKS, default="2020", help="Challenge year")
    p.add_argument("--trials", type=int, default=200, help="random trials (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--real",
        type=Path,
        nargs="*",
        default=None,
        help="also score random outputs for these real header folders (skipped if absent; "
        "default ../shared/data/challenge, and for 2021 also dialects/release2021)",
    )
    args = p.parse_args(argv)
    if not args.official.is_file():
        print(f"error: official scorer {args.official} not found", file=sys.stderr)
        return 1
    task = args.task
    if args.real is None:
        data = ROOT.parent / "shared" / "data"
        args.real = [data / "challenge"]
        if task == "2021":
            args.real.append(data / "dialects" / "release2021")
    ns = load_official(args.official, task)
    rng = np.random.default_rng(args.seed)
    gen = Generator2021(rng) if task == "2021" else Generator(rng)
    columns = list(metrics.SCORE_COLUMNS[task])

    buckets = {"direct": dict.fromkeys(columns + PER_CLASS, 0.0), "twin": {}}
    counts = {"direct": 0, "twin": 0}
    skipped, originals, notes = {}, {}, []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        workdir = tmp / "official_cwd"
        workdir.mkdir()
        shutil.copy(metrics.task_weights_path(task), workdir / "weights.csv")
        kinds = trial_kinds(args.trials, HAZARDS_2021 if task == "2021" else HAZARDS)
        kinds += [f"real:{r}" for r in args.real if r.is_dir()]
        for t, kind in enumerate(kinds):
            folder = tmp / f"trial{t}"
            folder.mkdir()
            labels, outputs = folder / "labels", folder / "outputs"
            if kind.startswith("real:") and task == "2021":
                info = gen.real_trial(folder, Path(kind[5:]))
                labels = info["labels"]
            elif kind.startswith("real:"):
                labels = Path(kind[5:])
                outputs.mkdir()
                for h in sorted(labels.glob("*.hea")):
                    (outputs / f"{h.stem}.csv").write_text(gen.output(h.stem, 10, 0.02))
                info = {"twin": False}
            else:
                info = gen.trial(folder, kind)
            ours = run_ours(labels, outputs, folder, task)  # ours must never crash
            try:
                official = run_official(ns, workdir, labels, outputs, task)
                crash = None
            except Exception as exc:
                official, crash = None, type(exc).__name__
            bucket = "twin" if info.get("twin") else "direct"
            if bucket == "twin":
                label = kind.split(":", 1)[1] if kind.startswith("hazard:") else kind
                if crash:
                    what = f"crashed ({crash})"
                elif max(compare(official, ours, columns).values()) > 1e-6:
                    what = "read it differently"
                else:
                    what = "agreed anyway"
                originals[(label, what)] = originals.get((label, what), 0) + 1
                official = run_official(
                    ns, workdir, folder / "twin_labels", folder / "twin_outputs", task
                )
            elif crash:  # the official code's crash is a skip, not a failure
                key = f"{kind} ({crash})"
                skipped[key] = skipped.get(key, 0) + 1
                shutil.rmtree(folder)
                continue
            diffs = compare(official, ours, columns)
            if kind == "degenerate":
                notes.append(
                    f"degenerate trial (correct == inactive): challenge metric official "
                    f"{official[1]['Challenge metric']!r}, ours {ours[1]['Challenge metric']!r}"
                )
            for k, v in diffs.items():
                buckets[bucket][k] = max(buckets[bucket].get(k, 0.0), v)
            counts[bucket] += 1
            shutil.rmtree(folder)
    elapsed = time.perf_counter() - t0

    compared = counts["direct"] + counts["twin"]
    print(
        f"Agreement with {args.official.name} (Challenge {task}): {counts['direct']} trials "
        f"compared on the same files, {counts['twin']} on twins, "
        f"{sum(skipped.values())} skipped, {elapsed:.1f} s (seed {args.seed})"
    )
    print()
    head = f"{'metric':<20} {'max |ours - official|':>22}"
    print(head + (f" {'twins':>10}" if counts["twin"] else ""))
    for k in columns + PER_CLASS:
        line = f"{k:<20} {buckets['direct'][k]:>22.3g}"
        print(line + (f" {buckets['twin'].get(k, 0.0):>10.3g}" if counts["twin"] else ""))
    if originals:
        print()
        print("Inputs the official scorer cannot read (compared on twins); on the originals it:")
        for (label, what), v in sorted(originals.items()):
            print(f"  {label}: {what} in {v} trial(s)")
    if skipped:
        print()
        print("Skipped (the official scorer crashed; ours scored them):")
        for k, v in sorted(skipped.items()):
            print(f"  {k}: {v}")
    for note in notes:
        print(note)
    worst = max(max(b.values(), default=0.0) for b in buckets.values())
    ok = worst <= 1e-6 and compared > 0
    print()
    print("PASS" if ok else "FAIL", f"(worst {worst:.3g}, tolerance 1e-6, {compared} compared)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
