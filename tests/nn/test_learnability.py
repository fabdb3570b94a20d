"""Every deep engine learns what it is shown: planted classes, and a tiny batch it must overfit.

A network can train without learning (a loss that stays at the prior's, outputs that only
track the base rates); these tests fail when that happens. Each deep classifier is trained at
its CPU-preset sizes (``team_code.presets``) on synthetic records whose classes are planted by
the generator (rate, rhythm, axis, PR, voltage, PVCs) and scored on synthetic records it never
saw; the beat networks on synthetic beats of three planted morphologies. Bars:

- the training loss of the last epoch is below 0.6 of the prior's (the loss of predicting each
  class's training prevalence), the best validation loss below 0.7 of it (``TRAIN_BAR``,
  ``VAL_BAR``: set from the spread over seeds, so that the verdict holds on other machines'
  kernels; cwt_googlenet trains 6 epochs here, ``LEARNING_EPOCHS``);
- held-out macro AUROC over the planted classes is at least 0.85 (records) or accuracy at
  least 0.85 (beats; chance is 1/3);
- on 8 records (9 beats) with dropout off, 60 optimiser steps bring the loss below a tenth of
  its start, or of the prior's where the output starts at the prior (the classic
  overfit-one-batch check).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

# The same measures as the benchmark that sets the bars from their spread over seeds.
from benchmarks.learnability import macro_auroc as _macro_auroc
from benchmarks.learnability import prior_loss as _prior_loss
from team_code.classifiers.base import apply_options, record_labels
from team_code.context import IN_MEMORY, Task
from team_code.data.labels import label_matrix, scored_classes
from team_code.data.records import RecordSet
from team_code.data.synth import generate_dataset
from team_code.presets import preset_options


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """160 training and 100 held-out synthetic records (other seeds than the demo's)."""
    root = tmp_path_factory.mktemp("learn")
    generate_dataset(root / "train", 160, seed=101, prefix="TRN")
    generate_dataset(root / "test", 100, seed=102, prefix="TST")
    return RecordSet.from_folder(root / "train"), RecordSet.from_folder(root / "test")


#: Epochs of cwt_googlenet in the planted-class test. At the CPU preset's 3 epochs the ratio of
#: its best validation loss to the prior's ranged 0.60-0.87 over seeds 0-2 on one machine (0.65
#: on seed 0 on another), its held-out AUROC 0.83-0.88: a verdict that depended on the seed and
#: the machine's kernels. At 6 epochs: 0.31-0.52 and 0.92-0.96 (docs/results.md, "Learnability
#: bars").
LEARNING_EPOCHS = {"epochs": "6"}

#: The bars, as fractions of the prior's loss (a network that learns nothing stays near 1.0):
#: the training loss of the last epoch, and the best validation loss (noisier: 20 % of 160
#: records), set above the largest ratio measured over seeds with a margin for other kernels.
TRAIN_BAR, VAL_BAR = 0.6, 0.7


def _cpu_config(name: str, **extra):
    from team_code.classifiers import registry

    cls = registry.get(name)
    options = {**preset_options("cpu")[name], **extra}
    return cls, apply_options(cls.Config, options)


@pytest.mark.parametrize("name", ["parallel_cnn", "cwt_googlenet"])
def test_deep_classifier_learns_planted_classes(name, synthetic, one_thread):
    train, test = synthetic
    classes = scored_classes().codes
    # GoogLeNet trains twice the CPU preset's 3 epochs here: at 3 the bars below sat inside the
    # spread of seeds and machines' kernels (see LEARNING_EPOCHS).
    extra = {"pretrained_weights": "none", **LEARNING_EPOCHS} if name == "cwt_googlenet" else {}
    cls, config = _cpu_config(name, **extra)
    model = cls(config).fit(train, Task.of_classes(classes), IN_MEMORY)

    if name == "parallel_cnn":
        history, loss_terms = model.fit_summary_["history"], 1.0
    else:  # GoogLeNet's training loss adds its two auxiliary heads' losses, weighted
        history, loss_terms = model.fit_summary_["history"], 1.0 + 2 * config.aux_weight
    prior = _prior_loss(label_matrix(record_labels(train), classes))
    last = history[-1]["train_loss"] / loss_terms
    assert last < TRAIN_BAR * prior, f"{name}: training loss {last:.4f} vs prior {prior:.4f}"
    best_val = min(row["val_loss"] for row in history)  # the main output on held-out records
    assert best_val < VAL_BAR * prior, f"{name}: validation loss {best_val:.4f} vs {prior:.4f}"

    truth = label_matrix(record_labels(test), classes)
    auroc = _macro_auroc(truth, model.predict_proba(test))
    assert auroc >= 0.85, f"{name}: held-out macro AUROC {auroc:.3f} on the planted classes"


def _overfit(model: torch.nn.Module, x: torch.Tensor, loss_of, steps: int = 60) -> list[float]:
    """Adam at 3e-3 on one batch for ``steps`` steps; the loss after each."""
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = loss_of(model(x))
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def _tiny_batch(synthetic, preprocess):
    train, _ = synthetic
    records = [train[i] for i in range(8)]
    x = torch.from_numpy(np.stack([preprocess(r) for r in records]))
    y = torch.from_numpy(label_matrix(record_labels(records), scored_classes().codes))
    return x, y.float()


def test_parallel_cnn_overfits_a_tiny_batch(synthetic, one_thread):
    from team_code.classifiers.parallel_cnn import ParallelCNN, init_output_bias, preprocess_record

    x, y = _tiny_batch(synthetic, lambda r: preprocess_record(r, 250.0, 2500, 0.5))
    torch.manual_seed(0)
    model = ParallelCNN(y.shape[1], 2500, filters=16, dropout=0.0)
    init_output_bias(model, y.mean(dim=0).numpy())  # as the classifier does: start at the prior
    losses = _overfit(
        model, x, lambda out: torch.nn.functional.binary_cross_entropy_with_logits(out, y)
    )
    prior = _prior_loss(y.numpy())
    assert losses[0] == pytest.approx(prior, rel=0.2)
    assert losses[-1] < 0.1 * prior, losses[::10]


def test_googlenet_overfits_a_tiny_batch(synthetic, one_thread):
    from team_code.classifiers.cwt_googlenet import (
        CWTGoogLeNetConfig,
        _network,
        image_leads,
        record_image,
        scalogram_config,
    )
    from team_code.data.records import STANDARD_LEADS

    config = CWTGoogLeNetConfig(image_size=64, dropout=0.0)
    scalograms = scalogram_config(config)
    x, y = _tiny_batch(synthetic, lambda r: record_image(r, 64, scalograms).astype(np.float32))
    torch.manual_seed(0)
    model = _network(y.shape[1], config, len(image_leads(STANDARD_LEADS)))

    def loss_of(out):
        main = out[0] if isinstance(out, tuple) else out
        return torch.nn.functional.binary_cross_entropy_with_logits(main, y)

    losses = _overfit(model, x, loss_of)
    assert losses[-1] < 0.1 * losses[0], losses[::10]


# --------------------------------------------------------------------------------------------
# Beat networks


def synthetic_beats(n_per_class: int, length: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Beats of three planted morphologies, normalised to [0, 1] as the MIT-BIH beats are:
    0 normal (P, narrow upright QRS, concordant T), 1 supraventricular (early, inverted P,
    narrow QRS), 2 ventricular (no P, wide inverted QRS, discordant T). Widths, positions and
    amplitudes jitter by 15 %; white noise at about 3 % of the range."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length)

    def bump(centre, width, amp):
        return amp * np.exp(-0.5 * ((t - centre) / width) ** 2)

    rows, labels = [], []
    for label in range(3):
        for _ in range(n_per_class):
            j = rng.uniform(0.85, 1.15, size=6)
            qrs = 0.4 + rng.uniform(-0.02, 0.02)
            if label == 0:
                beat = bump(qrs - 0.18, 0.025 * j[0], 0.2 * j[1]) + bump(qrs, 0.012 * j[2], j[3])
                beat += bump(qrs + 0.3, 0.05 * j[4], 0.3 * j[5])
            elif label == 1:
                beat = bump(qrs - 0.1, 0.025 * j[0], -0.3 * j[1]) + bump(qrs, 0.012 * j[2], j[3])
                beat += bump(qrs + 0.28, 0.05 * j[4], 0.3 * j[5])
            else:
                beat = bump(qrs, 0.05 * j[2], -1.2 * j[3]) + bump(
                    qrs + 0.3, 0.06 * j[4], 0.4 * j[5]
                )
            beat = beat + rng.normal(0, 0.03, length)
            rows.append((beat - beat.min()) / (beat.max() - beat.min()))
            labels.append(label)
    order = rng.permutation(len(rows))
    return np.asarray(rows, np.float32)[order], np.asarray(labels, np.int64)[order]


BEAT_NETWORKS = [("kachuee2018", 187), ("skip_cnn", 187), ("resnet_tcn", 180)]


@pytest.mark.parametrize("name,length", BEAT_NETWORKS)
def test_beat_network_learns_planted_morphologies(name, length, one_thread):
    from team_code.beats import models
    from team_code.beats.extract import BeatSet
    from team_code.beats.train import BeatTrainConfig, predict_proba, train_beat_model

    x, y = synthetic_beats(100, length, seed=1)
    beats = BeatSet(
        x=x,
        y=y,
        record=np.array(["SYN"] * len(y)),
        group=np.array(["SYN"] * len(y)),
        sample=np.zeros(len(y), dtype=np.int64),
        method="synthetic",
    )
    torch.manual_seed(0)
    model = models.build(name, n_classes=3, input_length=length)
    config = BeatTrainConfig(epochs=6, batch_size=32, device="cpu", seed=0)
    result = train_beat_model(model, beats, config, n_classes=3)
    prior = float(np.log(3))  # balanced classes
    assert result.history[-1]["train_loss"] < 0.5 * prior, result.history

    x_test, y_test = synthetic_beats(60, length, seed=2)
    predicted = predict_proba(model, x_test, device="cpu").argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    assert accuracy >= 0.85, f"{name}: held-out accuracy {accuracy:.3f}"


@pytest.mark.parametrize("name,length", BEAT_NETWORKS)
def test_beat_network_overfits_a_tiny_batch(name, length, one_thread):
    from team_code.beats import models

    x, y = synthetic_beats(3, length, seed=3)
    torch.manual_seed(0)
    model = models.build(name, n_classes=3, input_length=length)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    target = torch.from_numpy(y)
    losses = _overfit(
        model, torch.from_numpy(x), lambda out: torch.nn.functional.cross_entropy(out, target)
    )
    assert losses[-1] < 0.1 * losses[0], losses[::10]
