"""cwt_googlenet's mosaics on the device, channels_last, batch sizes chosen for the
device: each checked on the CPU (CUDA-only behaviour through a faked device)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from team_code.classifiers import cwt_googlenet as cg
from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier
from team_code.context import RunContext, Task
from team_code.data.records import RecordSet
from team_code.data.synth import generate_dataset
from team_code.nn import training
from team_code.nn.cwt_torch import TOLERANCE, TOLERANCE_FLOAT16
from team_code.nn.training import (
    CPU_BATCH_SIZE,
    TrainConfig,
    choose_batch_size,
    fit,
    largest_fitting_batch,
    memory_format,
)

pytestmark = pytest.mark.usefixtures("one_thread")

#: Largest difference of a score between the numpy and the device-side mosaics for the tiny
#: network trained here (float32 inputs, the mosaics within TOLERANCE per pixel; measured 1e-9).
SCORE_TOLERANCE = 1e-6
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """16 synthetic records of two sources (one at 257 Hz)."""
    folder = tmp_path_factory.mktemp("device_scalograms")
    generate_dataset(folder, 8, seed=0, fs=500, prefix="A")
    generate_dataset(folder, 8, seed=1, fs=257, prefix="E")
    return RecordSet.from_folder(folder)


def quiet(**kwargs) -> RunContext:
    return RunContext(progress=False, log=lambda message: None, **kwargs)


@pytest.fixture(scope="module")
def trained(records):
    config = CWTGoogLeNetClassifier.quick_config()
    return CWTGoogLeNetClassifier(dataclasses.replace(config, scalogram_device="cpu")).fit(
        records, Task(), quiet()
    )


def on_device(model: CWTGoogLeNetClassifier) -> CWTGoogLeNetClassifier:
    """The same fitted model, its scalograms computed by the network."""
    other = copy.copy(model)
    other.config = dataclasses.replace(model.config, scalogram_device="device")
    return other


def test_both_paths_give_the_network_the_same_mosaics_and_scores(trained, records):
    device = on_device(trained)
    images = np.stack(list(trained.inputs(records)))
    components = np.stack(list(device.inputs(records)))
    assert images.shape == (16, 48, 48)
    assert components.shape[:2] == (16, 8) and components.shape[2] != 48  # leads x samples
    network = trained.network_
    with torch.no_grad():
        mosaics = network.image(torch.from_numpy(components)).numpy()
        assert np.array_equal(network.image(torch.from_numpy(images)).numpy(), images)
    assert np.abs(mosaics - images).max() < TOLERANCE  # pixels span [0, 1]
    assert images.max() > 0.5  # not blank
    scores = trained.predict_proba(records)
    assert np.abs(device.predict_proba(records) - scores).max() < SCORE_TOLERANCE


def test_training_runs_on_the_device_path_from_cached_components(records, tmp_path):
    config = dataclasses.replace(
        CWTGoogLeNetClassifier.quick_config(), scalogram_device="device", batch_size=0
    )
    ctx = quiet(cache_dir=str(tmp_path))
    model = CWTGoogLeNetClassifier(config).fit(records, Task(), ctx)
    stored = model.cached_inputs(records, progress=False)
    assert stored.items.shape[0] == 8 and stored.items.array.dtype == np.float16  # components
    assert "components" in stored.folder.name
    summary = model.summary()["training"]
    assert summary["scalograms"] == "torch on cpu"
    assert summary["batch_size"] == CPU_BATCH_SIZE  # 0 off CUDA: the CPU's batch size
    assert "not on CUDA" in summary["batch_size_rule"]
    scores = model.predict_proba(records)
    assert scores.shape == (16, len(model.classes_)) and np.all((scores >= 0) & (scores <= 1))
    # the float16 components give mosaics within the float16 tolerance of numpy's
    numpy_images = [cg.record_image(records[i], 48, cg.scalogram_config(config)) for i in (0, 9)]
    with torch.no_grad():
        mosaics = model.network_.image(torch.from_numpy(stored.items.take([0, 9]))).numpy()
    assert np.abs(mosaics - np.stack(numpy_images)).max() < TOLERANCE_FLOAT16
    # the same weights run on numpy mosaics: the path is not part of the model
    model.save(tmp_path / "model")
    again = CWTGoogLeNetClassifier.load(tmp_path / "model")
    again.config = dataclasses.replace(again.config, scalogram_device="cpu")
    np.testing.assert_allclose(again.predict_proba(records), scores, atol=1e-3)


def test_auto_computes_the_scalograms_on_the_device_only_on_cuda(monkeypatch):
    model = CWTGoogLeNetClassifier(CWTGoogLeNetClassifier.quick_config())
    model._begin(Task(), quiet())
    assert model.config.scalogram_device == "auto"
    assert not model.scalograms_on_device()
    assert model.input_settings()["kind"] == cg.IMAGE_VERSION
    monkeypatch.setattr("team_code.nn.device.pick_device", lambda name="auto": CUDA)
    assert model.scalograms_on_device()
    assert model.input_settings()["kind"] == cg.COMPONENTS_VERSION
    assert model.transform().func is cg.signal_components
    forced = CWTGoogLeNetClassifier(dataclasses.replace(model.config, scalogram_device="cpu"))
    forced._begin(Task(), quiet())
    assert not forced.scalograms_on_device()
    with pytest.raises(ValueError, match="scalogram_device must be one of"):
        CWTGoogLeNetClassifier(dataclasses.replace(model.config, scalogram_device="gpu"))


# --------------------------------------------------------------------------------------------
# channels_last


def conv_weight(network) -> torch.Tensor:
    return network.net.conv1.conv.weight


def test_channels_last_converts_on_every_device_and_changes_no_output(trained, records):
    assert trained.train_config().channels_last  # GoogLeNet asks for it
    network = copy.deepcopy(trained.network_).to(memory_format=torch.contiguous_format)
    images = torch.from_numpy(np.stack(list(trained.inputs(records.subset(range(4))))))
    with torch.no_grad():
        before = network(images)
    moved = copy.deepcopy(network)
    memory_format(moved, TrainConfig(channels_last=True))  # one layout for every device
    weight = conv_weight(moved)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()
    with torch.no_grad():
        np.testing.assert_allclose(moved(images).numpy(), before.numpy(), atol=1e-4)
    untouched = copy.deepcopy(network)
    memory_format(untouched, TrainConfig(channels_last=False))  # not asked: no change
    assert conv_weight(untouched).is_contiguous()


def test_a_loaded_network_predicts_in_channels_last(trained, records, tmp_path):
    """The saved weights are layout-free; prediction lays a loaded network out as asked."""
    trained.save(tmp_path / "m")
    loaded = CWTGoogLeNetClassifier.load(tmp_path / "m")
    assert conv_weight(loaded.network_).is_contiguous()
    scores = loaded.predict_proba(records.subset(range(3)))
    assert conv_weight(loaded.network_).is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(scores, trained.predict_proba(records.subset(range(3))), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Batch sizes chosen for the device

MIB = 2**20


def test_largest_fitting_batch_is_a_power_of_two_under_the_cap():
    assert largest_fitting_batch(100 * MIB, 20 * MIB, 1000 * MIB, 256) == 32  # 100+32*20 <= 1000
    assert largest_fitting_batch(0, 1, 1e12, 256) == 256  # the cap
    assert largest_fitting_batch(0, 1, 1e12, 100) == 64  # a power of two under the cap
    assert largest_fitting_batch(100 * MIB, 20 * MIB, 10 * MIB, 256) == 1  # none fits: 1


def tiny_network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def fake_cuda(monkeypatch, free_bytes: int) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_bytes, 80 * 2**30))


def test_the_batch_size_fits_a_fraction_of_the_free_device_memory(monkeypatch):
    network = tiny_network()
    state = copy.deepcopy(network.state_dict())
    probed = []

    def probe(n):  # 100 MiB + 20 MiB per item; disturbs the weights as a real step would
        probed.append(n)
        with torch.no_grad():
            network[0].weight.add_(1.0)
        return 100 * MIB + n * 20 * MIB

    config = TrainConfig(device_batch=True, memory_fraction=0.5)
    fake_cuda(monkeypatch, 2 * 2**30)  # 2 GiB free: 1 GiB for batches
    size, rule = choose_batch_size(network, None, None, config, CUDA, probe=probe)
    assert size == 32 and probed == [4, 8]  # 100 + 32 * 20 = 740 MiB <= 1024 MiB < 1380
    assert "fits 50% of 2.0 GiB free" in rule and "20.0 MiB per item" in rule
    for key, value in network.state_dict().items():  # the probe left no trace
        assert torch.equal(value, state[key]), key
    fake_cuda(monkeypatch, 80 * 2**30)
    assert choose_batch_size(network, None, None, config, CUDA, probe=probe)[0] == 256  # cap
    assert choose_batch_size(network, None, None, config, CUDA, train=False, probe=probe)[0] == 512
    # the CPU, or a batch size the user set: the configured one, no probe
    probed.clear()
    assert choose_batch_size(network, None, None, config, torch.device("cpu"), probe=probe) == (
        32,
        "not on CUDA: 32, the CPU's batch size",
    )
    assert choose_batch_size(network, None, None, TrainConfig(batch_size=8), CUDA, probe=probe) == (
        8,
        "configured",
    )
    assert probed == []


def test_fit_trains_with_the_chosen_batch_size_and_says_so(monkeypatch):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(40, 6)).astype(np.float32))
    y = torch.from_numpy((rng.random((40, 2)) < 0.5).astype(np.float32))
    dataset = torch.utils.data.TensorDataset(x, y)
    sizes = []

    def loss(outputs, targets):
        sizes.append(len(targets))
        return nn.functional.binary_cross_entropy_with_logits(outputs, targets)

    monkeypatch.setattr(training, "choose_batch_size", lambda *args, **kwargs: (16, "faked"))
    said = []
    config = TrainConfig(epochs=1, device="cpu", device_batch=True, progress=False)
    result = fit(tiny_network(), dataset, None, loss, config, log=said.append, name="tiny")
    assert (result.batch_size, result.batch_rule) == (16, "faked")
    assert "tiny: batch size 16 (faked)" in said
    assert sizes[-3:] == [16, 16, 8]  # the epoch's batches: 40 items by 16
