"""A GPU that the machine has but torch cannot use is reported on stderr, not skipped in silence."""

from __future__ import annotations

import pytest
import torch

from team_code.nn import device


@pytest.fixture
def no_cuda(monkeypatch):
    """torch sees no CUDA, and the once-per-process warning has not been given yet."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_warned_unusable_gpu", False)
    monkeypatch.setattr(
        device, "cuda_init_error", lambda: "RuntimeError: The NVIDIA driver is too old"
    )


def test_auto_warns_loudly_when_a_gpu_is_present_but_unusable(monkeypatch, capsys, no_cuda):
    monkeypatch.setattr(device, "gpu_evidence", lambda: "/dev/nvidia0 exists")
    assert device.pick_device("auto").type == "cpu"
    err = capsys.readouterr().err
    assert "WARNING: running on the CPU" in err
    assert "/dev/nvidia0 exists" in err
    assert "driver is too old" in err
    assert "driver 580 or newer" in err
    assert "--device cpu" in err
    device.pick_device("auto")  # once per process
    assert capsys.readouterr().err == ""


def test_no_warning_without_a_gpu_or_when_the_cpu_is_asked_for(monkeypatch, capsys, no_cuda):
    monkeypatch.setattr(device, "gpu_evidence", lambda: None)
    assert device.pick_device("auto").type == "cpu"
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(device, "gpu_evidence", lambda: "/dev/nvidia0 exists")
    assert device.pick_device("cpu").type == "cpu"
    assert capsys.readouterr().err == ""


def test_asking_for_cuda_names_the_unusable_gpu(monkeypatch, no_cuda):
    monkeypatch.setattr(device, "gpu_evidence", lambda: "/dev/nvidia0 exists")
    with pytest.raises(RuntimeError, match=r"CUDA is not available here: a GPU is present"):
        device.pick_device("cuda")


def test_no_warning_when_cuda_works(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device, "_warned_unusable_gpu", False)
    monkeypatch.setattr(device, "gpu_evidence", lambda: "/dev/nvidia0 exists")
    assert device.unusable_gpu_problem() is None
    device.warn_unusable_gpu()
    assert capsys.readouterr().err == ""


def test_gpu_evidence_reads_the_device_node_and_nvidia_smi(monkeypatch, tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 535.54.03'\n")
    smi.chmod(0o755)
    real_exists = device.os.path.exists
    monkeypatch.setattr(device.os.path, "exists", lambda p: p == "/dev/nvidia0" or real_exists(p))
    monkeypatch.setattr(device.shutil, "which", lambda name: str(smi))
    evidence = device.gpu_evidence()
    assert "/dev/nvidia0 exists" in evidence
    assert "NVIDIA H100 80GB HBM3, 535.54.03" in evidence


def test_gpu_evidence_is_none_without_either(monkeypatch, tmp_path):
    failing = tmp_path / "nvidia-smi"
    failing.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    failing.chmod(0o755)
    monkeypatch.setattr(device.os.path, "exists", lambda p: False)
    monkeypatch.setattr(device.shutil, "which", lambda name: str(failing))
    assert device.gpu_evidence() is None
    monkeypatch.setattr(device.shutil, "which", lambda name: None)
    assert device.gpu_evidence() is None
