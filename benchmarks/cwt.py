"""Benchmark the scalogram pipeline and GoogLeNet throughput of ``cwt_googlenet`` on this machine.

Tables printed:

1. CWT of one record (8 leads x (10-s rhythm + 1.1-s average beat) at 250 Hz, 56 scales,
   cmor1.5-1.0): records per second with our precomputed FFT filter bank versus a fresh
   per-scale computation with ``pywt.cwt`` (``method="fft"`` and ``method="conv"``), the same
   scales; the signals are the real components of Challenge records.
2. The whole mosaic per record (``ecg_image``: filtering, resampling, QRS detection, average
   beat, both CWTs, area resizing) at 224 and 64 pixels: records per second.
3. GoogLeNet images per second on this CPU (or ``--device cuda``): training steps (forward
   with the two auxiliary heads, BCE losses, backward, Adam step) and inference (eval
   forward), at several image sizes.

Every figure is the median of ``--repeats`` runs after one warm-up run. Usage::

    python -m benchmarks.cwt [--data DIR] [--records 6] [--repeats 5] [--threads 1]
        [--sizes 64 112 224] [--batch 16] [--device cpu]

``--cv K`` instead cross-validates the classifier on the Challenge records: K folds grouped so
that identical signals stay on one side (``cv.grouped_kfold``), ``cwt_googlenet`` with the
options given by ``--set OPTION=VALUE`` trained on each training part, the test parts'
predictions pooled and scored (challenge metric, macro F1, per-class F1 and AUROC with the
number of positives), next to ``prevalence`` on the same folds::

    python -m benchmarks.cwt --cv 3 --set image_size=96 --set epochs=6 --set lr=0.001
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """The challenge folder: $ECG_KIT_DATA/challenge, else <repo>/../shared/data/challenge."""
    env = os.environ.get("ECG_KIT_DATA")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    return root / "challenge"


def median_time(function, repeats: int) -> float:
    """Median wall time of ``function()`` over ``repeats`` runs, after one warm-up run."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def get_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_dir())
    parser.add_argument("--records", type=int, default=6, help="real records to transform")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 112, 224])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-conv", action="store_true", help="skip the slow pywt conv run")
    parser.add_argument("--cv", type=int, default=0, help="cross-validate with this many folds")
    parser.add_argument("--set", dest="options", action="append", default=[], metavar="OPT=V")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    return parser


def cross_validate(args) -> None:
    """Pooled out-of-fold scores of cwt_googlenet and prevalence, with per-class counts."""
    import tempfile

    from evaluation import metrics
    from team_code.classifiers.cv import grouped_kfold, signal_digests, take
    from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier
    from team_code.classifiers.prevalence import PrevalenceClassifier
    from team_code.classifiers.thresholds import challenge_score
    from team_code.context import RunContext, Task
    from team_code.data.labels import label_matrix, scored_classes
    from team_code.data.records import RecordSet
    from team_code.harness import build_config

    records = RecordSet.from_folder(args.data)
    classes = scored_classes().codes
    truth = label_matrix(records.labels, classes)
    folds = grouped_kfold(truth, signal_digests(records), args.cv, seed=args.seed)
    values = dict(item.partition("=")[::2] for item in args.options)
    config = build_config(CWTGoogLeNetClassifier, values)
    cache = tempfile.mkdtemp(prefix="cwt-cv-cache-")
    ctx = RunContext(cache_dir=cache, progress=False)
    print(f"{args.cv}-fold CV on {len(records)} records; cwt_googlenet options {values}")
    methods = {"cwt_googlenet": None, "prevalence": None}
    scores = {m: np.zeros(truth.shape) for m in methods}
    binary = {m: np.zeros(truth.shape, dtype=bool) for m in methods}
    start = time.perf_counter()
    for k, (train, test) in enumerate(folds):
        models = {
            "cwt_googlenet": CWTGoogLeNetClassifier(config),
            "prevalence": PrevalenceClassifier(),
        }
        for name, model in models.items():
            model.fit(take(records, train), Task(), ctx)
            test_records = [records[i] for i in test]
            scores[name][test] = model.predict_proba(test_records)
            binary[name][test] = model.decide(scores[name][test])
        pretrained = models["cwt_googlenet"].summary()["pretrained"]["source"]
        print(
            f"fold {k + 1}: {len(train)} train / {len(test)} test, weights: {pretrained}, "
            f"{time.perf_counter() - start:.0f} s"
        )
    np.savez(
        Path(cache) / "cv_predictions.npz",
        truth=truth,
        **{f"scores_{m}": scores[m] for m in methods},
        **{f"binary_{m}": binary[m] for m in methods},
    )
    print(f"predictions saved in {Path(cache) / 'cv_predictions.npz'}")
    print("\n| method | challenge metric | macro F1 | macro AUROC |\n|---|---|---|---|")
    per_class = {}
    for name in methods:
        f1, f1_per = metrics.compute_f_measure(truth, binary[name])
        auroc, _, auroc_per, _ = metrics.compute_auc(truth, scores[name])
        per_class[name] = (f1_per, auroc_per)
        value = challenge_score(truth, binary[name], classes)
        print(f"| {name} | {value:.3f} | {f1:.3f} | {auroc:.3f} |")
    print("\n| class | positives | F1 cwt | AUROC cwt | F1 prevalence |\n|---|---|---|---|---|")
    counts = truth.sum(axis=0)
    for j in np.argsort(-counts):
        if counts[j] == 0:
            continue
        f1_cwt, auroc_cwt = per_class["cwt_googlenet"][0][j], per_class["cwt_googlenet"][1][j]
        f1_prev = per_class["prevalence"][0][j]
        print(
            f"| {scored_classes().abbreviation(classes[j])} | {int(counts[j])} | "
            f"{f1_cwt:.3f} | {auroc_cwt:.3f} | {f1_prev:.3f} |"
        )


def cwt_table(records, args) -> None:
    """Table 1: filter bank versus per-scale pywt.cwt."""
    import pywt

    from team_code.dsp import cwt

    config = cwt.ScalogramConfig()
    components = []
    for record in records:
        rhythm, beat = cwt.ecg_components(
            record.select_leads(cwt.ECG_IMAGE_LEADS), record.fs, config
        )
        components.append((rhythm, beat))
    bands = {
        "rhythm": cwt.log_frequencies(*config.rhythm_band_hz, config.n_scales),
        "beat": cwt.log_frequencies(*config.beat_band_hz, config.n_scales),
    }
    scales = {k: cwt.scales_from_frequencies(v, config.fs_hz) for k, v in bands.items()}
    wavelet = f"cmor{config.bandwidth}-{config.center}"

    def ours():
        for rhythm, beat in components:
            cwt.scalogram(rhythm, config.fs_hz, bands["rhythm"])
            if beat is not None:
                cwt.scalogram(beat, config.fs_hz, bands["beat"], padding="zero")

    def theirs(method):
        def run():
            for rhythm, beat in components:
                np.abs(pywt.cwt(rhythm, scales["rhythm"], wavelet, method=method, axis=-1)[0])
                if beat is not None:
                    np.abs(pywt.cwt(beat, scales["beat"], wavelet, method=method, axis=-1)[0])

        return run

    n = len(components)
    rows = [("filter bank (ours, cached FFT bank)", median_time(ours, args.repeats))]
    rows.append(("pywt.cwt method='fft' (per scale)", median_time(theirs("fft"), args.repeats)))
    if not args.skip_conv:
        rows.append(("pywt.cwt method='conv' (per scale)", median_time(theirs("conv"), 1)))
    print(f"\nCWT of {n} records: 8 leads x (rhythm 2500 + beat 275 samples), 56 scales")
    print("| method | s per record | records/s | speed-up of ours |\n|---|---|---|---|")
    base = rows[0][1]
    for name, seconds in rows:
        per = seconds / n
        print(f"| {name} | {per:.4f} | {1 / per:.1f} | {seconds / base:.1f}x |")


def image_table(records, args) -> None:
    """Table 2: the whole mosaic per record."""
    from team_code.dsp import cwt

    print(
        f"\nWhole mosaic (filter, resample, QRS, average beat, CWT, resize), {len(records)} records"
    )
    print("| image | s per record | records/s |\n|---|---|---|")
    for size in (224, 64):

        def run(shape=(size, size)):
            for record in records:
                cwt.ecg_image(record.select_leads(cwt.ECG_IMAGE_LEADS), record.fs, shape)

        per = median_time(run, args.repeats) / len(records)
        print(f"| {size} x {size} | {per:.4f} | {1 / per:.1f} |")


def network_table(args) -> None:
    """Table 3: GoogLeNet training and inference images per second."""
    import torch
    import torch.nn.functional as F

    from team_code.nn.googlenet import GoogLeNet

    device = torch.device(args.device)
    torch.manual_seed(0)
    print(
        f"\nGoogLeNet (24 classes, aux heads in training), batch {args.batch}, {device}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print("| image | train images/s | inference images/s |\n|---|---|---|")
    for size in args.sizes:
        model = GoogLeNet(num_classes=24).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        x = torch.rand(args.batch, 3, size, size, device=device)
        y = (torch.rand(args.batch, 24, device=device) < 0.1).float()

        def train_step(model=model, optimizer=optimizer, x=x, y=y):
            model.train()
            main, aux2, aux1 = model(x)
            loss = F.binary_cross_entropy_with_logits(main, y)
            loss = loss + 0.3 * (
                F.binary_cross_entropy_with_logits(aux1, y)
                + F.binary_cross_entropy_with_logits(aux2, y)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        def infer(model=model, x=x):
            model.eval()
            with torch.no_grad():
                model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()

        train = args.batch / median_time(train_step, args.repeats)
        inference = args.batch / median_time(infer, args.repeats)
        print(f"| {size} x {size} | {train:.1f} | {inference:.1f} |")


def main(args) -> int:
    """Run the three tables."""
    import torch

    from team_code.data.records import RecordSet

    torch.set_num_threads(args.threads)
    if args.cv:
        cross_validate(args)
        return 0
    records_all = RecordSet.from_folder(args.data)
    step = max(1, len(records_all) // args.records)
    records = [records_all[i] for i in range(0, len(records_all), step)][: args.records]
    cwt_table(records, args)
    image_table(records, args)
    network_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
