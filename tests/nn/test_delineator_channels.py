"""The learned delineator's two-channel input (``NetConfig.input_channels``): the lead with
and without the input low-pass. Off by default; one-channel networks, files and results are
as before the option."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from team_code.nn import delineator as d
from team_code.nn.delineator.training import _augment


def _toy(channels: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 256)).astype(np.float32)
    y = (np.abs(x) > 1).astype(np.int64) * d.QRS
    y[:, :20] = d.IGNORE
    if channels == 2:
        x = np.stack([x, 0.5 * x + rng.normal(size=x.shape).astype(np.float32)], axis=1)
    return x, y


def test_one_channel_is_the_default(one_thread):
    assert d.NetConfig().input_channels == 1
    assert d.WEIGHTS.name == "delineator.safetensors" and d.WEIGHTS.parent.name == "nn"
    assert "--input-channels" not in d.BUILD_COMMAND
    x, y = _toy(1)
    net = d.NetConfig(widths=(4, 8), kernel=3)
    cfg = d.TrainConfig(epochs=2, batch=4, crop=128, seed=3)
    model = d.train(x, y, net, cfg)
    assert model.state_dict()["down.0.0.weight"].shape[1] == 1  # one input channel
    # a (n, 1, length) input is the same thing
    again = d.train(x[:, None, :], y, net, cfg)
    for (k, va), (_, vb) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(va, vb), k


def test_prepare_gives_the_lead_with_and_without_the_low_pass():
    fs = 500.0
    t = np.arange(5000) / fs
    x = np.stack([np.sin(2 * np.pi * 80.0 * t), np.sin(2 * np.pi * 10.0 * t)])
    z1, y1 = d.prepare(x, fs)
    z2, y2 = d.prepare(x, fs, input_channels=2)
    assert z1.shape == (2, 2500) and z2.shape == (2, 2, 2500) and z2.dtype == np.float32
    np.testing.assert_array_equal(z2[:, 0], z1)  # channel 0: the one-channel input
    np.testing.assert_array_equal(y2, y1)  # amplitudes stay the low-passed lead's
    mid = slice(500, 2000)
    assert np.ptp(z2[0, 1, mid]) > 10 * np.ptp(z2[0, 0, mid])  # 80 Hz in channel 1 only
    np.testing.assert_allclose(z2[1, 1, mid], z2[1, 0, mid], atol=0.05)  # 10 Hz in both
    with pytest.raises(ValueError, match="input_channels"):
        d.prepare(x, fs, lowpass_hz=0.0, input_channels=2)
    with pytest.raises(ValueError, match="input_channels"):
        d.NetConfig(input_channels=2, lowpass_hz=0.0)
    with pytest.raises(ValueError, match="input_channels"):
        d.NetConfig(input_channels=3)


def test_augmented_noise_is_low_passed_on_channel_0_only():
    rng = np.random.default_rng(1)
    xb = np.zeros((4, 2, 1024), np.float32)
    cfg = d.TrainConfig(wander=0.0, noise=0.5)
    out = _augment(xb, rng, cfg, 40.0)
    assert out.shape == xb.shape and out.dtype == np.float32
    hf = np.abs(np.diff(out, axis=-1)).mean(axis=-1)  # white noise: large sample steps
    assert (hf[:, 1] > 2 * hf[:, 0]).all()
    # one channel: the draws and arithmetic of the one-channel augmentation (b, n), whatever
    # lowpass_hz says
    one = np.random.default_rng(2).normal(size=(4, 1024)).astype(np.float32)
    ref, cfg = np.random.default_rng(1), d.TrainConfig()
    t = np.arange(one.shape[1]) / d.FS
    gain = ref.uniform(*cfg.gain, size=(4, 1))
    wander = np.zeros(one.shape)
    for _ in range(2):
        amp = ref.uniform(0, cfg.wander / 2, size=(4, 1))
        hz = ref.uniform(*cfg.wander_hz, size=(4, 1))
        phase = ref.uniform(0, 2 * np.pi, size=(4, 1))
        wander += amp * np.sin(2 * np.pi * hz * t[None, :] + phase)
    noise = ref.normal(size=one.shape) * ref.uniform(0, cfg.noise, size=(4, 1))
    expected = (gain * one + wander + noise).astype(np.float32)
    for lowpass_hz in (0.0, 40.0):
        got = _augment(one[:, None], np.random.default_rng(1), cfg, lowpass_hz)
        np.testing.assert_array_equal(got[:, 0], expected)


def test_two_channel_network_trains_saves_loads_and_delineates(tmp_path, one_thread):
    from team_code.data.synth import RecordSpec, synthesize

    x, y = _toy(2)
    net = d.NetConfig(widths=(4, 8), kernel=3, input_channels=2)
    cfg = d.TrainConfig(epochs=2, batch=4, crop=128, seed=3)
    a, b = d.train(x, y, net, cfg), d.train(x, y, net, cfg)
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), k
    assert a.down[0][0].in_channels == 2
    path = tmp_path / "two.safetensors"
    d.save(a, path, {"records": ["x"]})
    loaded = d.load(path)
    assert loaded.config == net
    labels = d.predict_labels(loaded, x)  # traced, frozen, batch norms folded
    with torch.no_grad():
        eager = a.eval()(torch.from_numpy(x)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(labels, eager)
    with pytest.raises(ValueError, match=r"2 input channel"):
        d.predict_labels(loaded, x[:, 0])  # one channel given to a two-channel network
    with pytest.raises(ValueError, match="same leads"):
        d.train(x, y[:4], net, cfg)
    # a record: preprocessing from the file alone, points in the record's samples
    rec, _ = synthesize(RecordSpec(heart_rate_bpm=72.0), fs=500, duration_s=10, seed=1)
    out = d.delineate_record(rec, 500.0, loaded)
    assert isinstance(out, list)
    assert all(ld.points.shape[0] == rec.shape[0] and ld.fs == 500.0 for ld in out)


def test_a_file_without_the_field_loads_as_one_channel(tmp_path):
    from safetensors.torch import save_file

    model = d.SegmentNet(d.NetConfig(widths=(4, 8), kernel=3)).eval()
    raw = {"widths": [4, 8], "kernel": 3, "first_convs": 1}  # as the first files were written
    path = tmp_path / "old.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"net": json.dumps(raw)},
    )
    loaded = d.load(path)
    assert loaded.config.input_channels == 1 and loaded.config.lowpass_hz == 40.0
    assert d.predict_labels(loaded, np.zeros((2, 300), np.float32)).shape == (2, 300)


def test_speed_benchmark_prepares_the_input_of_the_weights(tmp_path, capsys, one_thread):
    from benchmarks import delineator_speed

    path = tmp_path / "two.safetensors"
    d.save(d.SegmentNet(d.NetConfig(widths=(4, 8), kernel=3, input_channels=2)).eval(), path)
    args = ["--weights", str(path), "--ludb", str(tmp_path / "none"), "--records", "a"]
    assert delineator_speed.main([*args, "--runs", "1"]) == 0  # synthetic records
    out = capsys.readouterr().out
    assert "2 input channel(s)" in out and "median (ms)" in out


def test_context_channel_is_the_records_rms_over_its_leads_on_every_lead():
    fs = 500.0
    t = np.arange(5000) / fs
    x = np.stack([np.sin(2 * np.pi * 5.0 * t), np.zeros_like(t), 0.5 * np.sin(2 * np.pi * 3 * t)])
    z1, y1 = d.prepare(x, fs)
    z2, y2 = d.prepare(x, fs, input_channels=2, second="context")
    assert z2.shape == (3, 2, 2500) and z2.dtype == np.float32
    np.testing.assert_array_equal(z2[:, 0], z1)  # channel 0: the one-channel input
    np.testing.assert_array_equal(y2, y1)
    rms = np.sqrt(np.mean(z1.astype(np.float64) ** 2, axis=0))
    for lead in range(3):  # the flat lead reads the others' context too
        np.testing.assert_allclose(z2[lead, 1], rms, rtol=1e-6, atol=1e-7)
    # no low-pass is needed for it, an unknown second channel is refused
    assert d.prepare(x, fs, lowpass_hz=0.0, input_channels=2, second="context")[0].shape[1] == 2
    assert d.NetConfig(input_channels=2, lowpass_hz=0.0, second_channel="context")
    with pytest.raises(ValueError, match="second channel"):
        d.prepare(x, fs, input_channels=2, second="other")
    with pytest.raises(ValueError, match="second channel"):
        d.NetConfig(input_channels=2, second_channel="other")


def test_augmentation_leaves_the_context_channel_and_augments_the_lead_as_one_channel():
    xb = np.random.default_rng(2).normal(size=(4, 2, 1024)).astype(np.float32)
    cfg = d.TrainConfig()
    got = _augment(xb, np.random.default_rng(1), cfg, 40.0, second="context")
    np.testing.assert_array_equal(got[:, 1], xb[:, 1])
    one = _augment(xb[:, :1], np.random.default_rng(1), cfg, 40.0)
    np.testing.assert_array_equal(got[:, 0], one[:, 0])  # the same draws as one channel


def test_context_network_saves_loads_and_delineates_a_record(tmp_path, one_thread, monkeypatch):
    from team_code.data.synth import RecordSpec, synthesize

    x, y = _toy(2)
    net = d.NetConfig(widths=(4, 8), kernel=3, input_channels=2, second_channel="context")
    model = d.train(x, y, net, d.TrainConfig(epochs=1, batch=4, crop=128, seed=3))
    path = tmp_path / "context.safetensors"
    d.save(model, path)
    loaded = d.load(path)
    assert loaded.config == net
    rec, _ = synthesize(RecordSpec(heart_rate_bpm=72.0), fs=500, duration_s=10, seed=1)
    z, _ = d.prepare(rec, 500.0, 40.0, 2, "context")
    direct = d.predict_labels(loaded, z)
    assert direct.shape == (rec.shape[0], 2500)
    from team_code.nn.delineator import inference

    seen = []

    def spy(*args, **kwargs):
        seen.append(args[4] if len(args) > 4 else kwargs.get("second"))
        return d.prepare(*args, **kwargs)

    monkeypatch.setattr(inference, "prepare", spy)
    out = d.delineate_record(rec, 500.0, loaded)  # prepares the context from the file alone
    assert seen == ["context"]
    assert all(ld.points.shape[0] == rec.shape[0] for ld in out)
    with pytest.raises(ValueError, match="needs input_channels 2"):
        d.NetConfig(second_channel="context")  # one channel: no second to hold it
