"""The parallel 1D-CNN: grouped == separate branches, learning, persistence, seeds, cache."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import team_code.data.records as records_module
from team_code.classifiers.parallel_cnn import (
    LoopedParallelCNN,
    ParallelCNN,
    ParallelCNNClassifier,
    count_parameters,
    fix_length,
    group_split,
    grouped_from_branches,
    preprocess_record,
    signal_groups,
    stack_lengths,
)
from team_code.context import RunContext, Task
from team_code.data.labels import scored_classes
from team_code.data.records import STANDARD_LEADS, Record, RecordSet
from team_code.nn.packed import packed_entries

AF = "164889003"
NSR = "426783006"


def synthetic_records(n, seed, fs=250.0, seconds=4.0):
    """Half the records (AF) carry a 9 Hz oscillation of 0.3 mV on every lead; all have noise
    and a 1 Hz baseline of random phase; the others are labelled sinus rhythm."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(fs * seconds)) / fs
    records = []
    for i in range(n):
        planted = i % 2 == 0
        signal = 0.2 * rng.standard_normal((12, t.size))
        signal += 0.5 * np.sin(2 * np.pi * 1.0 * t + rng.uniform(0, 2 * np.pi))
        if planted:
            signal += 0.3 * np.sin(2 * np.pi * 9.0 * t + rng.uniform(0, 2 * np.pi))
        records.append(
            Record(
                name=f"SYN{seed}_{i:03d}",
                signal=signal.astype(np.float32),
                fs=fs,
                leads=STANDARD_LEADS,
                labels=(AF,) if planted else (NSR,),
            )
        )
    return records


SMALL = dataclasses.replace(ParallelCNNClassifier.quick_config(), fs_hz=100.0, length=400, epochs=1)


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    records = synthetic_records(24, seed=1)
    return ParallelCNNClassifier(SMALL).fit(records, Task()), records


def test_grouped_equals_separate_branches():
    torch.manual_seed(0)
    options = dict(filters=6, n_blocks=3, dropout=0.3)
    branches = [ParallelCNN(1, 300, **options) for _ in range(4)]
    for branch in branches:  # non-trivial BatchNorm statistics and affine parameters
        for module in branch.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.2, 0.2)
    grouped = ParallelCNN(4, 300, **options)
    grouped_from_branches(grouped, branches)
    looped = LoopedParallelCNN(4, 300, **options)
    looped.branches = torch.nn.ModuleList(branches)
    x = torch.randn(5, 12, 300)
    grouped.eval(), looped.eval()
    with torch.no_grad():
        separate = torch.cat([b(x) for b in branches], dim=1)
        torch.testing.assert_close(grouped(x), separate, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(looped(x), separate, atol=0, rtol=0)
    # training mode (batch statistics) and gradients too, without dropout
    no_drop = dict(options, dropout=0.0)
    branches = [ParallelCNN(1, 300, **no_drop) for _ in range(3)]
    grouped = ParallelCNN(3, 300, **no_drop)
    grouped_from_branches(grouped, branches)
    out_grouped = grouped(x)
    out_separate = torch.cat([b(x) for b in branches], dim=1)
    torch.testing.assert_close(out_grouped, out_separate, atol=1e-5, rtol=1e-5)
    out_grouped.sum().backward()
    out_separate.sum().backward()
    torch.testing.assert_close(
        grouped.head.weight.grad,
        torch.cat([b.head.weight.grad for b in branches]),
        atol=1e-5,
        rtol=1e-4,
    )


def test_paper_sized_network_shape_and_parameter_count():
    assert stack_lengths(10000, 7) == [1998, 997, 497, 247, 122, 59, 28, 12]
    assert stack_lengths(200, 7) == [38, 17, 7]  # a 4th block would leave 2 < 3 steps
    with pytest.raises(ValueError, match="too short"):
        stack_lengths(20, 3)
    branch = ParallelCNN(1, 10000)
    # 12*64*11+64 + 7*(64*64*5+64) + 8*2*64 (BatchNorm) + 64*3+1 + 10+1
    assert count_parameters(branch) == 8512 + 7 * 20544 + 1024 + 193 + 11 == 153548
    assert count_parameters(ParallelCNN(24, 10000)) == 24 * 153548


def test_fix_length_and_preprocess():
    signal = np.arange(10.0)[None, :]
    np.testing.assert_array_equal(fix_length(signal, 4), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(fix_length(signal, 13)[0, 10:], [0, 1, 2])
    record = Record("R", np.ones((12, 1000), np.float32), 1000.0, STANDARD_LEADS[::-1])
    out = preprocess_record(record, fs_hz=500.0, length=800)
    assert out.shape == (12, 800) and out.dtype == np.float32
    with pytest.raises(records_module.RecordError, match="no lead"):
        preprocess_record(Record("R", np.ones((2, 100), np.float32), 500.0, ("I", "II")))


def test_groups_and_split_keep_identical_signals_together():
    array = np.zeros((6, 2, 3), np.float16)
    array[1] = array[4] = 1  # a duplicated recording
    array[2], array[3], array[5] = 2, 3, 4
    groups = signal_groups(array)
    assert groups[1] == groups[4] and len(set(groups)) == 5 and groups[0] == groups[0]
    for seed in range(10):
        train, val = group_split(groups, 0.4, seed)
        assert sorted([*train, *val]) == list(range(6)) and len(val) >= 1
        assert (1 in val) == (4 in val)


def test_output_shape_range_and_thresholds(fitted):
    model, records = fitted
    scores = model.predict_proba(records[:5])
    assert scores.shape == (5, 24)
    assert np.all((scores >= 0) & (scores <= 1))
    assert model.thresholds_.shape == (24,)
    assert model.fit_summary_["n_val"] == 6 and model.fit_summary_["n_train"] == 18
    assert model.predict(records[:5]).dtype == bool


def test_save_load_round_trip_without_pickle(fitted, tmp_path, monkeypatch):
    model, records = fitted
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "config.json",
        "parallel_cnn.json",
        "weights.safetensors",
    ]

    def no_pickle(*args, **kwargs):
        raise AssertionError("loading must not unpickle")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded = ParallelCNNClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(records), model.predict_proba(records))
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)
    assert loaded.config == model.config


def test_learns_a_planted_class():
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(1)
    config = dataclasses.replace(
        SMALL, epochs=8, lr=3e-3, filters=8, val_fraction=0.2, threshold_method="challenge", seed=3
    )
    model = ParallelCNNClassifier(config).fit(synthetic_records(48, 2), Task())
    history = model.fit_summary_["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    test = synthetic_records(40, 9)
    af = model.classes_.index(AF)
    truth = model.label_matrix(test)[:, af]
    assert roc_auc_score(truth, model.predict_proba(test)[:, af]) > 0.9


def test_same_seed_same_model():
    records = synthetic_records(16, 4)
    a = ParallelCNNClassifier(SMALL).fit(records, Task())
    b = ParallelCNNClassifier(SMALL).fit(records, Task())
    np.testing.assert_array_equal(a.predict_proba(records), b.predict_proba(records))
    c = ParallelCNNClassifier(dataclasses.replace(SMALL, seed=1)).fit(records, Task())
    assert not np.array_equal(a.predict_proba(records), c.predict_proba(records))


def test_second_epoch_and_second_run_read_the_cache(records_dir, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = records_module.load_record

    def counting(path):
        calls["n"] += 1
        return original(path)

    monkeypatch.setattr(records_module, "load_record", counting)
    windowed = {"n": 0}  # held-out records longer than a window: read again for their windows
    window_scores = ParallelCNNClassifier._window_scores

    def counting_windows(self, records_, network=None):
        windowed["n"] += len(records_)
        return window_scores(self, records_, network)

    monkeypatch.setattr(ParallelCNNClassifier, "_window_scores", counting_windows)
    records = RecordSet.from_folder(records_dir).subset(range(12))
    config = dataclasses.replace(SMALL, epochs=2)
    ctx = RunContext(cache_dir=str(tmp_path / "cache"), progress=False)
    first = ParallelCNNClassifier(config).fit(records, Task(), ctx)
    assert calls["n"] == 12 + windowed["n"]  # each record read once over two epochs
    calls["n"] = windowed["n"] = 0
    second = ParallelCNNClassifier(config).fit(records, Task(), ctx)
    assert calls["n"] == windowed["n"]  # the inputs from the cache, windows read again
    np.testing.assert_array_equal(first.thresholds_, second.thresholds_)
    (folder,) = {p.parent for p in (tmp_path / "cache").rglob("packed.json")}
    assert len(packed_entries(folder)) == 12  # one entry per record, in the pack


def test_bad_threshold_method():
    with pytest.raises(ValueError, match="threshold_method"):
        ParallelCNNClassifier(dataclasses.replace(SMALL, threshold_method="f1")).fit(
            synthetic_records(4, 0), Task()
        )


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_cuda_mixed_precision_matches_cpu(dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    records = synthetic_records(24, 5)
    config = dataclasses.replace(SMALL, amp=True, amp_dtype=dtype, epochs=2)
    model = ParallelCNNClassifier(config).fit(records, Task(), RunContext(device="cuda"))
    cuda_scores = model.predict_proba(records)
    model.use(RunContext(device="cpu"))
    cpu_scores = model.predict_proba(records)
    assert np.all((cuda_scores >= 0) & (cuda_scores <= 1))
    np.testing.assert_allclose(cuda_scores, cpu_scores, atol=0.02)  # reduced precision


def test_floor_thresholds_are_the_prevalence_floor():
    from team_code.classifiers.parallel_cnn import floor_thresholds
    from team_code.classifiers.thresholds import NEVER, challenge_score

    classes = scored_classes().codes
    nsr, af = classes.index("426783006"), classes.index("164889003")
    rng = np.random.default_rng(0)
    truth = np.zeros((200, len(classes)), dtype=bool)
    truth[:, nsr] = rng.random(200) < 0.7  # sinus rhythm in most records
    truth[:, af] = ~truth[:, nsr] & (rng.random(200) < 0.2)  # a rare class
    floor = floor_thresholds(truth, classes)
    assert set(np.unique(floor)) <= {0.0, NEVER}
    assert floor[af] == NEVER  # a rare class is never predicted by a constant
    # The floor's outputs score what the best constant prediction scores.
    outputs = np.zeros_like(truth) >= floor
    constant_best = max(
        challenge_score(truth, np.broadcast_to(mask, truth.shape), classes)
        for mask in (np.eye(len(classes), dtype=bool)[nsr], np.zeros(len(classes), dtype=bool))
    )
    assert challenge_score(truth, outputs, classes) >= constant_best - 1e-12


def test_augment_rolls_and_scales_reproducibly_from_torch_seed():
    from team_code.classifiers.parallel_cnn import Augment

    x = np.arange(24, dtype=np.float32).reshape(2, 12) + 1
    torch.manual_seed(3)
    shifted = Augment(0.0, True)(x)
    k = int(np.flatnonzero(shifted[0] == x[0, 0])[0])
    np.testing.assert_array_equal(shifted, np.roll(x, k, axis=-1))  # one roll for all leads
    torch.manual_seed(3)
    np.testing.assert_array_equal(Augment(0.0, True)(x), shifted)  # torch's seed decides
    torch.manual_seed(4)
    scaled = Augment(0.3, False)(x)
    ratio = scaled / x
    assert np.allclose(ratio, ratio.flat[0]) and ratio.flat[0] != 1.0  # one gain for all leads


def test_input_scale_makes_the_network_blind_to_a_gain():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 400)
    for mode, gains in (("record", 3.0), ("lead", torch.linspace(0.5, 2, 12)[:, None])):
        net = ParallelCNN(2, 400, filters=4, n_blocks=3, input_scale=mode, head="pool").eval()
        torch.testing.assert_close(net(x * gains), net(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="input_scale"):
        ParallelCNN(2, 400, filters=4, n_blocks=3, input_scale="volts")


def three_sources(n, seed):
    """Synthetic records named as if from three sources (A, E, Q), in turn."""
    records = synthetic_records(n, seed)
    return [
        dataclasses.replace(r, name=f"{'AEQ'[i % 3]}{i + 1:04d}") for i, r in enumerate(records)
    ]


def test_thresholds_from_out_of_source_scores(monkeypatch):
    """threshold_split="sources": one network per training source scores that source; the
    thresholds are searched on those scores, grouped by source; the final network is the one
    trained on everything."""
    from team_code.classifiers import decision as module

    records = three_sources(24, 6)
    seen = {}
    original = module.challenge_thresholds

    def spy(labels, scores, classes, **kwargs):
        seen["n"], seen["groups"] = len(labels), kwargs.get("groups")
        seen["vote"], seen["min_positives"] = kwargs.get("vote"), kwargs.get("min_positives")
        return original(labels, scores, classes, **kwargs)

    monkeypatch.setattr(module, "challenge_thresholds", spy)
    trained = []
    original_train = ParallelCNNClassifier._train

    def counting(self, stored, truth, targets, train_rows, val_rows, *args):
        trained.append((len(train_rows), len(val_rows)))
        return original_train(self, stored, truth, targets, train_rows, val_rows, *args)

    monkeypatch.setattr(ParallelCNNClassifier, "_train", counting)
    config = dataclasses.replace(
        SMALL, threshold_split="sources", source_vote="majority", source_min_positives=7
    )
    model = ParallelCNNClassifier(config).fit(records, Task())
    assert trained[:3] == [(16, 8)] * 3  # each source held out by a network of the others
    assert len(trained) == 4 and trained[3][0] + trained[3][1] == 24  # then the final one
    assert seen["n"] == 24 and sorted(set(seen["groups"])) == ["A", "E", "Q"]
    assert seen["vote"] == "majority" and seen["min_positives"] == 7
    assert model.thresholds_.shape == (len(model.classes_),)
    with pytest.raises(ValueError, match="threshold_split"):
        ParallelCNNClassifier(dataclasses.replace(SMALL, threshold_split="folds")).fit(
            records, Task()
        )


def test_no_per_source_network_trains_on_the_twin_of_a_record_it_scores(monkeypatch):
    """threshold_split="sources": a recording released under two sources' names (A0101 =
    Q0048 in the Challenge data) counts with its first copy's source, so no network trained
    for the thresholds scores the twin of one of its training records."""
    records = three_sources(24, 6)
    twin = dataclasses.replace(records[0], name="Q9999")  # records[0] is A0001
    records = [*records, twin]
    trained = []
    original_train = ParallelCNNClassifier._train

    def spy(self, stored, truth, targets, train_rows, val_rows, *args):
        kept = [records[i].name for i in stored.kept]
        trained.append(({kept[i] for i in train_rows}, {kept[i] for i in val_rows}, args))
        return original_train(self, stored, truth, targets, train_rows, val_rows, *args)

    monkeypatch.setattr(ParallelCNNClassifier, "_train", spy)
    config = dataclasses.replace(SMALL, threshold_split="sources")
    ParallelCNNClassifier(config).fit(records, Task())
    per_source = {args[0]: train for train, held, args in trained if args}
    assert sorted(per_source) == ["source-A", "source-E", "source-Q"]
    assert "A0001" not in per_source["source-A"] and "Q9999" not in per_source["source-A"]
    assert {"A0001", "Q9999"} <= per_source["source-Q"]  # the twin is scored with A
    assert {"A0001", "Q9999"} <= per_source["source-E"]


def test_source_ensemble_predicts_with_the_per_source_networks(tmp_path):
    from team_code.nn.layers import MeanLogits

    records = three_sources(24, 7)
    config = dataclasses.replace(SMALL, threshold_split="sources", source_ensemble=True)
    model = ParallelCNNClassifier(config).fit(records, Task())
    assert isinstance(model.network_, MeanLogits) and len(model.network_.members) == 3
    x = torch.randn(2, 12, SMALL.length)
    with torch.no_grad():
        mean = torch.stack([m(x) for m in model.network_.members]).mean(0)
        torch.testing.assert_close(model.network_(x), mean)
    model.save(tmp_path / "m")
    loaded = ParallelCNNClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(records), model.predict_proba(records))
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)


def test_source_targets_mark_the_classes_a_source_never_labels_unknown():
    from team_code.classifiers.deep import source_targets

    truth = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    sources = np.array(["A", "A", "E", "E"])
    targets = source_targets(truth, sources)
    # A labels classes 0 and 2, E only class 1: the others are unknown there, not absent;
    # class 3, which no source has, stays negative
    nan = np.nan
    expected = np.array([[1, nan, 0, 0], [0, nan, 1, 0], [nan, 1, nan, 0], [nan, 0, nan, 0]])
    np.testing.assert_array_equal(targets, expected.astype(np.float32))
    assert targets.dtype == np.float32
    one = source_targets(truth, np.array(["A"] * 4))  # one source: nothing to mask
    np.testing.assert_array_equal(one, truth.astype(np.float32))
    np.testing.assert_array_equal(source_targets(truth, sources, "none"), truth.astype(np.float32))
    with pytest.raises(ValueError, match="label_mask must be one of"):
        source_targets(truth, sources, "hospital")
    with pytest.raises(ValueError, match="label_mask"):
        ParallelCNNClassifier(dataclasses.replace(SMALL, label_mask="hospital"))


def test_the_masked_loss_skips_unknown_targets_only():
    from team_code.classifiers.deep import masked_bce_with_logits

    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    targets = (torch.rand(5, 4, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    full = torch.nn.BCEWithLogitsLoss()(logits, targets)
    assert torch.equal(masked_bce_with_logits(logits, targets), full)  # to the last bit
    masked = targets.clone()
    masked[:, 1] = float("nan")
    loss = masked_bce_with_logits(logits, masked)
    known = torch.ones(4, dtype=bool)
    known[1] = False
    expected = torch.nn.BCEWithLogitsLoss()(logits[:, known], targets[:, known])
    assert torch.allclose(loss, expected, rtol=0, atol=1e-7)
    loss.backward()
    assert torch.all(logits.grad[:, 1] == 0) and torch.all(logits.grad[:, known] != 0)
    nothing = torch.full_like(targets, float("nan"))
    assert masked_bce_with_logits(logits, nothing).item() == 0.0


def test_label_mask_source_trains_on_the_known_targets_only(monkeypatch):
    """With label_mask="source" the loss sees NaN exactly where a record's source has no
    record of the class, and the output bias starts at the prevalence among known targets."""
    records = three_sources(24, 8)
    # source Q labels no class but the first label of its first record
    kept = records[2].labels[:1]
    records = [
        dataclasses.replace(r, labels=tuple(c for c in r.labels if c in kept))
        if r.name.startswith("Q")
        else r
        for r in records
    ]
    seen = []
    original = ParallelCNNClassifier._train

    def spy(self, stored, truth, targets, *args):
        seen.append((truth.copy(), targets.copy()))
        return original(self, stored, truth, targets, *args)

    monkeypatch.setattr(ParallelCNNClassifier, "_train", spy)
    model = ParallelCNNClassifier(dataclasses.replace(SMALL, label_mask="source"))
    model.fit(records, Task())
    truth, targets = seen[0]
    sources = np.array([r.name[0] for r in records])
    for source in "AEQ":
        rows = sources == source
        labelled = truth[rows].any(axis=0) | ~truth.any(axis=0)
        assert np.isnan(targets[rows][:, ~labelled]).all()
        np.testing.assert_array_equal(targets[rows][:, labelled], truth[rows][:, labelled])
    assert np.isnan(targets).any() and np.isfinite(model.fit_summary_["best_loss"])


def test_source_balance_weights_even_out_each_sources_prevalence():
    from team_code.classifiers.deep import masked_bce_with_logits, source_balance_weights

    # class 0: 1 of 4 in A, 3 of 4 in E (pooled 1/2); class 1: unknown in E
    targets = np.array(
        [[1, 0], [0, 1], [0, 0], [0, 0], [1, np.nan], [1, np.nan], [1, np.nan], [0, np.nan]],
        dtype=np.float32,
    )
    sources = np.array(list("AAAAEEEE"))
    w = source_balance_weights(targets, sources)
    np.testing.assert_allclose(w[:4, 0], [2, 2 / 3, 2 / 3, 2 / 3])  # 0.5/0.25, 0.5/0.75
    np.testing.assert_allclose(w[4:, 0], [2 / 3, 2 / 3, 2 / 3, 2])
    for rows in (slice(0, 4), slice(4, 8)):  # each source's weighted prevalence is the pooled
        assert np.sum(w[rows, 0] * targets[rows, 0]) / np.sum(w[rows, 0]) == pytest.approx(0.5)
    assert np.all(w[:4, 1] == 1) and np.all(w[4:, 1] == 0)  # one source: its own rate; unknown
    rare = np.r_[np.ones(1), np.zeros(99), np.ones(100)][:, None]  # 1 % in A, all of E
    capped = source_balance_weights(rare, np.repeat(["A", "E"], 100))
    assert capped[0, 0] == 10 and capped[1, 0] == pytest.approx(0.495 / 0.99)  # 50.5, capped
    logits = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    stacked = torch.from_numpy(np.stack([targets, w], axis=1))
    weighted = masked_bce_with_logits(logits, stacked)
    known = ~np.isnan(targets)
    y = torch.from_numpy(np.nan_to_num(targets))
    each = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    expected = (each * torch.from_numpy(w)).sum() / w[known].sum()
    assert torch.allclose(weighted, expected, rtol=0, atol=1e-6)


def test_source_balance_trains(monkeypatch):
    """Several sources: labels and weights reach the loss stacked; one source: the plain
    targets, so the training is the one without the options, to the last bit."""
    seen = []
    original = ParallelCNNClassifier._train

    def spy(self, stored, truth, targets, *args):
        seen.append(targets.shape)
        return original(self, stored, truth, targets, *args)

    monkeypatch.setattr(ParallelCNNClassifier, "_train", spy)
    config = dataclasses.replace(SMALL, label_mask="source", source_balance=True)
    records = synthetic_records(24, 9)  # two classes in turn: A has both, E one, Q the other
    records = [
        dataclasses.replace(r, name=f"{('AE' if i % 2 == 0 else 'QA')[i % 4 // 2]}{i + 1:04d}")
        for i, r in enumerate(records)
    ]
    assert len({r.labels for r in records if r.name[0] == "E"}) == 1
    model = ParallelCNNClassifier(config).fit(records, Task())
    assert np.isfinite(model.fit_summary_["best_loss"])
    assert model.predict_proba(records[:3]).shape == (3, len(model.classes_))
    assert seen[0][1] == 2  # (records, labels and weights, classes)
    one = [dataclasses.replace(r, name=f"A{i + 1:04d}") for i, r in enumerate(records)]
    plain = ParallelCNNClassifier(SMALL).fit(one, Task())
    balanced = ParallelCNNClassifier(config).fit(one, Task())
    assert seen[-1] == (24, len(balanced.classes_))
    np.testing.assert_array_equal(balanced.predict_proba(one), plain.predict_proba(one))


def test_one_source_falls_back_to_the_validation_split_and_its_own_minimum(monkeypatch):
    """threshold_split="sources" on records of one source: thresholds on the validation
    split, where threshold_min_positives applies (source_min_positives is for out-of-source
    scores, which hold every training record)."""
    from team_code.classifiers import decision as module

    seen = {}
    original = module.challenge_thresholds

    def spy(labels, scores, classes, **kwargs):
        seen.update(n=len(labels), groups=kwargs.get("groups"), least=kwargs["min_positives"])
        return original(labels, scores, classes, **kwargs)

    monkeypatch.setattr(module, "challenge_thresholds", spy)
    config = dataclasses.replace(
        SMALL, threshold_split="sources", threshold_min_positives=3, source_min_positives=9
    )
    records = [
        dataclasses.replace(r, name=f"A{i + 1:04d}") for i, r in enumerate(three_sources(24, 6))
    ]
    model = ParallelCNNClassifier(config).fit(records, Task())
    assert model.fit_summary_["thresholds_from"] == "validation"
    assert (seen["n"], seen["groups"], seen["least"]) == (model.fit_summary_["n_val"], None, 3)
    ParallelCNNClassifier(config).fit(three_sources(24, 6), Task())
    assert seen["groups"] is not None and seen["least"] == 9
