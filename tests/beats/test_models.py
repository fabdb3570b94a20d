"""The three beat networks: shapes, transfer freezing, rebuild from spec."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from team_code.beats import models


@pytest.mark.parametrize(
    "name,length", [("kachuee2018", 187), ("skip_cnn", 187), ("resnet_tcn", 180)]
)
def test_forward_shapes(name, length):
    torch.manual_seed(0)
    model = models.build(name, n_classes=5, input_length=length).eval()
    x = torch.randn(3, length)
    out = model(x)
    assert out.shape == (3, 5)
    assert torch.allclose(out, model(x.unsqueeze(1)))
    p = models.probabilities(out)
    assert torch.allclose(p.sum(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="batch"):
        model(torch.randn(2, 2, length))


def test_kachuee_layout_matches_paper():
    model = models.KachueeNet()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    # one stem convolution + five blocks of two, all 32 filters of width 5
    assert len(convs) == 11
    assert all(c.out_channels == 32 and c.kernel_size == (5,) for c in convs)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.MaxPool1d)]
    assert len(pools) == 5 and all(p.kernel_size == 5 and p.stride == 2 for p in pools)
    assert (model.fc1.out_features, model.fc2.out_features) == (32, 32)


def test_resnet_tcn_is_causal():
    torch.manual_seed(0)
    model = models.ResNetTCN(input_length=180).eval()
    x = torch.randn(1, 1, 180)
    y = x.clone()
    y[..., 100:] += 1.0
    a, b = model.tcn(x), model.tcn(y)
    # the TCN output before sample 100 cannot see a change at or after 100
    assert torch.allclose(a[..., :100], b[..., :100], atol=1e-6)
    assert not torch.allclose(a[..., 100:], b[..., 100:])


def test_transfer_freezes_all_but_last_two_layers():
    model = models.KachueeNet().prepare_transfer(2)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["fc2.bias", "fc2.weight", "out.bias", "out.weight"]
    assert model(torch.randn(4, 187)).shape == (4, 2)
    assert model.spec["n_classes"] == 2


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_rebuild_from_spec(name):
    torch.manual_seed(1)
    length = 180 if name == "resnet_tcn" else 187
    model = models.build(name, n_classes=4, input_length=length).eval()
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    again = models.from_spec(model.spec).eval()
    again.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = torch.randn(2, length)
    assert np.allclose(model(x).detach().numpy(), again(x).detach().numpy())


def test_unknown_model():
    with pytest.raises(ValueError, match="known"):
        models.build("nope")
