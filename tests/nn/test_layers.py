"""Layers of the deep engines: the robust amplitude scaling of inputs."""

from __future__ import annotations

import pytest
import torch

from team_code.nn.layers import AmplitudeScale


def test_record_scale_removes_a_gain_and_keeps_lead_ratios():
    torch.manual_seed(0)
    x = torch.randn(3, 12, 500)
    x[:, 1] *= 4  # one lead four times larger
    scale = AmplitudeScale(per_lead=False)
    y = scale(x)
    torch.testing.assert_close(scale(2.5 * x), y)  # one gain for all leads: removed
    ratio = (y[:, 1].std(-1) / y[:, 0].std(-1)).mean()
    assert 3 < float(ratio) < 5  # the leads' ratios stay
    spread = torch.quantile(y.flatten(1), 0.99, dim=1) - torch.quantile(y.flatten(1), 0.01, dim=1)
    torch.testing.assert_close(spread, torch.full((3,), 2.0))  # robust amplitude 1


def test_lead_scale_removes_each_leads_gain_and_spares_flat_leads():
    torch.manual_seed(1)
    x = torch.randn(2, 12, 400)
    gains = torch.linspace(0.5, 3.0, 12)[None, :, None]
    scale = AmplitudeScale(per_lead=True)
    torch.testing.assert_close(scale(x * gains), scale(x))
    flat = torch.zeros(1, 12, 400)
    flat[0, 0] = 1e-4 * torch.randn(400)
    assert float(scale(flat).abs().max()) < 0.01  # the floor keeps noise small
    with pytest.raises(ValueError, match="quantile"):
        AmplitudeScale(quantile=0.3)
