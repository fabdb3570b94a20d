"""cwt_googlenet: class-balanced draw, image cache reuse, fit/predict/save/load, ImageNet start."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from team_code.classifiers import cwt_googlenet as cg
from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier, balanced_draw
from team_code.classifiers.deep import WEIGHTS_FILE
from team_code.context import IN_MEMORY, RunContext, Task
from team_code.data.labels import scored_classes
from team_code.data.records import RecordSet
from team_code.nn.packed import packed_entries

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def records(records_dir):
    # 21 real records: CPSC (A*), Georgia (E*), PTB-XL (HR*), CPSC-Extra (Q*), PTB (S*, 1000
    # Hz); else 20 synthetic ones from four sources, one at 257 Hz
    every = RecordSet.from_folder(records_dir)
    real = [*range(0, 200, 12), 1, 2, 224, 230]
    return every.subset(real if len(every) > max(real) else range(0, len(every), 5))


@pytest.fixture(scope="module")
def fitted(records):
    return CWTGoogLeNetClassifier(CWTGoogLeNetClassifier.quick_config()).fit(records, Task())


def test_balanced_draw_caps_common_classes_and_duplicates_rare_ones():
    labels = np.zeros((112, 3), dtype=bool)
    labels[:100, 0] = True  # common: 100 records
    labels[100:110, 1] = True  # rarer: 10 records
    labels[110:112, 2] = True  # rare: 2 records
    draw = balanced_draw(labels, n_max=20, max_copies=5, rng=np.random.default_rng(0))
    counts = labels[draw].sum(axis=0)
    assert counts.tolist() == [20, 20, 10]  # capped; 10 -> 20 (2 copies); 2 -> 10 (5 copies)
    copies = np.bincount(draw, minlength=112)
    assert copies[:100].max() == 1 and (copies[:100] == 1).sum() == 20  # common: no repeats
    assert copies[100:110].tolist() == [2] * 10  # rarer class: every record twice
    assert copies[110:].tolist() == [5, 5]  # rare class: max_copies each
    again = balanced_draw(labels, n_max=20, max_copies=5, rng=np.random.default_rng(0))
    assert np.array_equal(draw, again)  # seeded


def test_balanced_draw_multilabel_and_unlabelled_records():
    labels = np.zeros((50, 2), dtype=bool)
    labels[:40, 0] = True
    labels[:3, 1] = True  # rare class co-occurring with the common one
    # records 40..49 have no positive class: they form one more class
    draw = balanced_draw(labels, n_max=12, max_copies=3, rng=np.random.default_rng(1))
    counts = labels[draw].sum(axis=0)
    assert counts[1] == 9  # 3 records x 3 copies
    assert counts[0] == 12  # the 9 co-occurring instances count toward the cap of 12
    assert (~labels[draw].any(axis=1)).sum() == 12  # 10 unlabelled records, 2 of them twice
    with pytest.raises(ValueError, match="n_max"):
        balanced_draw(labels, n_max=0, max_copies=1, rng=np.random.default_rng(0))


def test_fit_predict_save_load_round_trip(fitted, records, tmp_path):
    model = fitted
    n_classes = len(scored_classes().codes)
    batch = [records[i] for i in range(4)]
    scores = model.predict_proba(batch)
    assert scores.shape == (4, n_classes)
    assert np.all((scores >= 0) & (scores <= 1))
    assert model.thresholds_.shape == (n_classes,)
    assert np.array_equal(model.predict(batch), scores >= model.thresholds_)
    summary = model.summary()
    assert summary["pretrained"]["source"].startswith("none")  # says it trained from scratch
    assert summary["training"]["n_val"] == 5  # 25 % of 20
    assert summary["training"]["thresholds_from"] == "validation"
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / WEIGHTS_FILE).is_file()
    again = CWTGoogLeNetClassifier.load(tmp_path / "model")
    np.testing.assert_allclose(again.predict_proba(batch), scores, atol=1e-6)
    np.testing.assert_array_equal(again.thresholds_, model.thresholds_)


def _cached(tmp_path):
    return RunContext(cache_dir=str(tmp_path), progress=False, log=lambda message: None)


def test_image_cache_is_written_once_and_reused_by_subsets(records, tmp_path, monkeypatch):
    config = dataclasses.replace(CWTGoogLeNetClassifier.quick_config(), image_size=32)
    ctx = _cached(tmp_path)
    subset = records.subset(range(4))
    first = cg.images_for(subset, config, ctx)
    assert first.folder is not None and first.folder.parent == tmp_path
    assert len(packed_entries(first.folder)) == 4  # one entry per record, in the pack
    stack = np.stack([first.items[i] for i in range(len(first))])
    assert stack.shape == (4, 32, 32) and stack.dtype == np.float16

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cg, "signal_image", fail)
    again = cg.images_for(subset, config, ctx)
    np.testing.assert_array_equal(np.stack([again.items[i] for i in range(4)]), stack)
    part = cg.images_for(records.subset([2, 0]), config, ctx)  # a subset, another order
    np.testing.assert_array_equal(part.items[0], stack[2])
    np.testing.assert_array_equal(part.items[1], stack[0])
    # a different image size is a different cache entry (and would be computed)
    other = dataclasses.replace(config, image_size=40)
    with pytest.raises(AssertionError, match="cache should have been used"):
        cg.images_for(subset, other, ctx)
    # and so are other leads (the 2021 two-lead set draws two rows)
    with pytest.raises(AssertionError, match="cache should have been used"):
        cg.images_for(subset, config, ctx, Task(leads=("I", "II")))


def test_unusable_records_are_left_out_and_remembered(records, tmp_path, monkeypatch):
    config = dataclasses.replace(CWTGoogLeNetClassifier.quick_config(), image_size=32)
    ctx = _cached(tmp_path)
    real = cg.signal_image
    calls = []

    def broken_second(signal_mv, fs, image_size, scalograms):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("no scalogram: not finite")
        return real(signal_mv, fs, image_size, scalograms)

    monkeypatch.setattr(cg, "signal_image", broken_second)
    images = cg.images_for(records.subset(range(3)), config, ctx)
    assert images.kept.tolist() == [0, 2]
    assert images.failures == [(records.names[1], "no scalogram: not finite")]
    monkeypatch.setattr(cg, "signal_image", real)  # the failure is remembered, not retried
    again = cg.images_for(records.subset(range(3)), config, ctx)
    assert again.kept.tolist() == [0, 2] and again.failures == images.failures


def test_images_match_the_direct_computation(records):
    config = CWTGoogLeNetClassifier.quick_config()
    in_memory = cg.images_for(records.subset([0]), config, IN_MEMORY)
    assert in_memory.folder is None
    direct = cg.record_image(records[0], config.image_size, cg.scalogram_config(config))
    np.testing.assert_allclose(np.asarray(in_memory.items[0], np.float32), direct, atol=1e-3)


def test_imagenet_weights_are_loaded_and_reported(records, tmp_path):
    from team_code.nn.googlenet import GoogLeNet

    torch.manual_seed(1)
    path = tmp_path / "imagenet.pth"
    torch.save(GoogLeNet(num_classes=1000).state_dict(), path)  # torchvision's layout
    config = dataclasses.replace(
        CWTGoogLeNetClassifier.quick_config(), pretrained_weights=str(path), val_fraction=0.0
    )
    model = CWTGoogLeNetClassifier(config).fit(records.subset(range(8)), Task())
    pretrained = model.summary()["pretrained"]
    assert pretrained["source"] == "imagenet"
    assert pretrained["replaced_heads"] == ["aux1.fc2", "aux2.fc2", "fc"]
    assert model.network_.net.transform_input
    # nothing held out: no threshold is read off the training records' own scores
    assert model.summary()["training"]["thresholds_from"] == "none held out (0.5)"
    assert (model.thresholds_ == 0.5).all()
    model.save(tmp_path / "model")
    again = CWTGoogLeNetClassifier.load(tmp_path / "model")
    assert again.network_.net.transform_input


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="color"):
        CWTGoogLeNetClassifier(dataclasses.replace(CWTGoogLeNetClassifier.Config(), color="x"))
    with pytest.raises(ValueError, match="image_size"):
        CWTGoogLeNetClassifier(dataclasses.replace(CWTGoogLeNetClassifier.Config(), image_size=16))
    missing = dataclasses.replace(
        CWTGoogLeNetClassifier.quick_config(), pretrained_weights=str(tmp_path / "nope.pth")
    )
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        CWTGoogLeNetClassifier(missing).prepare_network(None, None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fit_on_gpu_with_mixed_precision(records):
    config = dataclasses.replace(CWTGoogLeNetClassifier.quick_config(), image_size=96, epochs=2)
    model = CWTGoogLeNetClassifier(config).fit(records, Task(), RunContext(device="cuda"))
    assert next(model.network_.parameters()).is_cuda
    scores = model.predict_proba([records[0], records[1]])
    assert scores.shape == (2, len(scored_classes().codes)) and np.all(np.isfinite(scores))


def test_interrupted_training_resumes_to_the_same_weights(records, tmp_path):
    subset = records.subset(range(10))
    base = dataclasses.replace(
        CWTGoogLeNetClassifier.quick_config(), image_size=32, n_max=8, val_fraction=0.2
    )
    classes = scored_classes().codes
    whole = CWTGoogLeNetClassifier(dataclasses.replace(base, epochs=2)).fit(
        subset, Task.of_classes(classes)
    )
    work = RunContext(workdir=str(tmp_path / "work"), progress=False)
    CWTGoogLeNetClassifier(dataclasses.replace(base, epochs=1)).fit(
        subset, Task.of_classes(classes), work
    )
    folder = tmp_path / "work"
    assert (folder / "checkpoint.pt").is_file() and (folder / "history.csv").is_file()
    resumed = CWTGoogLeNetClassifier(dataclasses.replace(base, epochs=2)).fit(
        subset, Task.of_classes(classes), work.replace(resume=True)
    )
    assert [row["epoch"] for row in resumed.fit_summary_["history"]] == [1, 2]
    for key, value in whole.network_.state_dict().items():
        assert torch.equal(resumed.network_.state_dict()[key], value), key


def test_a_model_saved_without_safetensors_weights_is_refused_clearly(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    (tmp_path / "model" / WEIGHTS_FILE).rename(tmp_path / "model" / "googlenet.pt")
    with pytest.raises(ValueError, match="earlier version of the kit"):
        CWTGoogLeNetClassifier.load(tmp_path / "model")


def test_the_auxiliary_loss_skips_unknown_targets_and_reads_weights():
    """GoogLeNet's main and auxiliary heads share the deep base's masked, weighted loss."""
    loss = cg._loss_function(0.3)
    g = torch.Generator().manual_seed(3)
    main, aux1, aux2 = (torch.randn(4, 3, generator=g) for _ in range(3))
    labels = torch.tensor([[1.0, 0, float("nan")], [0, 1, 0], [1, 1, 0], [0, 0, float("nan")]])
    known = ~torch.isnan(labels)
    weights = torch.rand(4, 3, generator=g) + 0.5
    y = torch.nan_to_num(labels)

    def bce(logits, w):
        each = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (each * w * known).sum() / (w * known).sum()

    ones = torch.ones_like(weights)
    expected = bce(main, ones) + 0.3 * (bce(aux1, ones) + bce(aux2, ones))
    assert torch.allclose(loss((main, aux2, aux1), labels), expected, atol=1e-6)
    stacked = torch.stack([labels, weights], dim=1)
    expected = bce(main, weights) + 0.3 * (bce(aux1, weights) + bce(aux2, weights))
    assert torch.allclose(loss((main, aux2, aux1), stacked), expected, atol=1e-6)
    assert torch.allclose(loss(main, stacked), bce(main, weights), atol=1e-6)
