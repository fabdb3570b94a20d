"""GoogLeNet: forward shapes, and key-for-key compatibility with torchvision's ImageNet weights.

torchvision is not installed here, so the expected state dict is written out below from the
architecture in ``torchvision/models/googlenet.py`` (pytorch/vision): ``BasicConv2d`` =
``conv`` (no bias) + ``bn`` (BatchNorm2d, eps=0.001); ``Inception(in, ch1x1, ch3x3red,
ch3x3, ch5x5red, ch5x5, pool_proj)`` with ``branch1``, ``branch2.{0,1}``, ``branch3.{0,1}``
(3x3 in "branch3", torchvision's known deviation from the paper's 5x5), ``branch4.1`` (after a
max-pool at ``branch4.0``); ``InceptionAux(in, n)`` = ``conv`` (1x1 to 128), ``fc1``
(2048 -> 1024), ``fc2`` (1024 -> n); ``fc`` (1024 -> 1000).
"""

from __future__ import annotations

import os

import pytest
import torch

from team_code.nn.googlenet import (
    WEIGHTS_ENV,
    GoogLeNet,
    GoogLeNetOutputs,
    load_imagenet_weights,
    pretrained_weights_path,
)

# torchvision's inception blocks: name -> (in, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool)
INCEPTION = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


def basic_conv(prefix: str, c_in: int, c_out: int, k: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.conv.weight": (c_out, c_in, k, k),
        f"{prefix}.bn.weight": (c_out,),
        f"{prefix}.bn.bias": (c_out,),
        f"{prefix}.bn.running_mean": (c_out,),
        f"{prefix}.bn.running_var": (c_out,),
        f"{prefix}.bn.num_batches_tracked": (),
    }


def torchvision_layout(num_classes: int = 1000, aux: bool = True) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of ``torchvision.models.googlenet(aux_logits=True).state_dict()``."""
    table = {}
    table |= basic_conv("conv1", 3, 64, 7)
    table |= basic_conv("conv2", 64, 64, 1)
    table |= basic_conv("conv3", 64, 192, 3)
    for name, (c_in, c1, c3r, c3, c5r, c5, pool) in INCEPTION.items():
        table |= basic_conv(f"{name}.branch1", c_in, c1, 1)
        table |= basic_conv(f"{name}.branch2.0", c_in, c3r, 1)
        table |= basic_conv(f"{name}.branch2.1", c3r, c3, 3)
        table |= basic_conv(f"{name}.branch3.0", c_in, c5r, 1)
        table |= basic_conv(f"{name}.branch3.1", c5r, c5, 3)  # 3x3, not the paper's 5x5
        table |= basic_conv(f"{name}.branch4.1", c_in, pool, 1)
    if aux:
        for name, c_in in (("aux1", 512), ("aux2", 528)):
            table |= basic_conv(f"{name}.conv", c_in, 128, 1)
            table[f"{name}.fc1.weight"] = (1024, 2048)
            table[f"{name}.fc1.bias"] = (1024,)
            table[f"{name}.fc2.weight"] = (num_classes, 1024)
            table[f"{name}.fc2.bias"] = (num_classes,)
    table["fc.weight"] = (num_classes, 1024)
    table["fc.bias"] = (num_classes,)
    return table


def random_state(table: dict, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in table.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator)
    return state


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A synthetic file with exactly torchvision's ImageNet keys and shapes (random values)."""
    state = random_state(torchvision_layout(1000))
    path = tmp_path_factory.mktemp("weights") / "googlenet-imagenet.pth"
    torch.save(state, path)
    return path, state


def test_state_dict_matches_torchvision_key_for_key_and_shape_for_shape():
    expected = torchvision_layout()
    ours = {k: tuple(v.shape) for k, v in GoogLeNet(num_classes=1000).state_dict().items()}
    assert list(ours) == list(expected)  # same keys, same order
    assert ours == expected
    assert len(expected) == 364


def test_parameter_count_is_torchvisions():
    model = GoogLeNet(num_classes=1000, aux_logits=False)
    # torchvision's GoogLeNet_Weights.IMAGENET1K_V1 meta: num_params 6,624,904
    assert sum(p.numel() for p in model.parameters()) == 6_624_904
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.001}


def test_forward_shapes_in_training_and_evaluation():
    torch.manual_seed(0)
    model = GoogLeNet(num_classes=24)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert [tuple(t.shape) for t in out] == [(2, 24)] * 3
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 24)
    no_aux = GoogLeNet(num_classes=5, aux_logits=False).train()
    assert no_aux(torch.randn(2, 3, 48, 48)).shape == (2, 5)


def test_synthetic_imagenet_file_loads_strictly_except_the_replaced_heads(imagenet_file):
    path, state = imagenet_file

    # 1000 classes: the file is the model's exact state dict
    same = GoogLeNet(num_classes=1000)
    same.load_state_dict(torch.load(path, weights_only=True), strict=True)
    report = load_imagenet_weights(GoogLeNet(num_classes=1000), path)
    assert report["replaced_heads"] == [] and report["loaded"] == 364

    # our 24 classes: everything but fc, aux1.fc2, aux2.fc2 comes from the file
    model = GoogLeNet(num_classes=24)
    report = load_imagenet_weights(model, path)
    assert report["replaced_heads"] == ["aux1.fc2", "aux2.fc2", "fc"]
    assert model.transform_input
    loaded = model.state_dict()
    heads = ("fc.", "aux1.fc2.", "aux2.fc2.")
    for key, value in state.items():
        if key.startswith(heads):
            assert loaded[key].shape[0] == 24  # fresh head for our classes
        else:
            assert torch.equal(loaded[key], value), key
    assert float(loaded["fc.weight"].abs().max()) <= 0.02  # truncated-normal re-initialisation


def test_older_files_without_batch_counters_and_without_aux_heads_load(tmp_path, imagenet_file):
    old = {k: v for k, v in imagenet_file[1].items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(old, path)
    model = GoogLeNet(num_classes=3, aux_logits=False)  # the file's aux heads are ignored
    report = load_imagenet_weights(model, path)
    assert report["ignored"] and all(k.startswith(("aux1.", "aux2.")) for k in report["ignored"])
    assert int(model.state_dict()["conv1.bn.num_batches_tracked"]) == 0


def test_mismatched_files_are_refused(tmp_path, imagenet_file):
    broken = dict(imagenet_file[1])
    broken["inception4a.branch3.1.conv.weight"] = torch.zeros(48, 16, 5, 5)  # the paper's 5x5
    del broken["conv2.conv.weight"]
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(ValueError, match=r"missing \['conv2.conv.weight'\].*wrong shapes"):
        load_imagenet_weights(GoogLeNet(num_classes=24), path)
    extra = dict(imagenet_file[1])
    extra["classifier.weight"] = torch.zeros(3)
    torch.save(extra, path)
    with pytest.raises(ValueError, match="unexpected"):
        load_imagenet_weights(GoogLeNet(num_classes=24), path)


def test_transform_input_maps_imagenet_normalised_images_to_minus_one_one():
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = torch.rand(2, 3, 8, 8)
    model = GoogLeNet(num_classes=2, transform_input=True)
    out = model._transform_input((pixels - mean) / std)
    torch.testing.assert_close(out, 2 * pixels - 1, atol=1e-6, rtol=0)
    model.transform_input = False
    assert torch.equal(model._transform_input(pixels), pixels)


def test_weights_path_from_option_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert pretrained_weights_path(None) is None
    file = tmp_path / "w.pth"
    file.write_bytes(b"x")
    assert pretrained_weights_path(str(file)) == file
    monkeypatch.setenv(WEIGHTS_ENV, os.fspath(file))
    assert pretrained_weights_path(None) == file
    with pytest.raises(FileNotFoundError, match="not found"):
        pretrained_weights_path(str(tmp_path / "missing.pth"))
    monkeypatch.setenv(WEIGHTS_ENV, os.fspath(tmp_path / "gone.pth"))
    with pytest.raises(FileNotFoundError, match=WEIGHTS_ENV):
        pretrained_weights_path(None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_forward_and_backward_under_mixed_precision_on_gpu():
    model = GoogLeNet(num_classes=24).cuda().train()
    x = torch.randn(4, 3, 224, 224, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    loss = sum(o.float().square().mean() for o in out)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
