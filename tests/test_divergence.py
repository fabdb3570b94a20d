"""A training that does not learn stops with TrainingDiverged and ships nothing."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from team_code.nn.training import TrainConfig, fit
from team_code.runs import TrainingDiverged


def _regression(seed: int = 0, n: int = 64):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]])
    return TensorDataset(x, y)


def _config(**changes) -> TrainConfig:
    values = dict(epochs=4, batch_size=8, lr=1e-2, device="cpu", progress=False)
    return TrainConfig(**{**values, **changes})


def _diverged(config: TrainConfig, **options) -> TrainingDiverged:
    """The error of a linear regression trained under ``config`` (it must diverge)."""
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged) as caught:
        fit(nn.Linear(4, 1), _regression(), None, nn.functional.mse_loss, config, **options)
    return caught.value


def test_a_non_finite_loss_stops_the_training_at_its_epoch(one_thread):
    error = _diverged(
        _config(lr=1e30, optimizer="sgd"),
        log=None,
        name="engine",
        part="fold 2",
        hint="lower --set engine.lr=",
    )
    assert (error.engine, error.part, error.epoch) == ("engine", "fold 2", 1)
    assert "not finite" in error.reason or "nan" in error.reason or "inf" in error.reason
    assert "engine (fold 2) diverged at epoch 1" in str(error)
    assert "lower --set engine.lr=" in str(error)


def test_a_loss_that_never_comes_back_to_its_start_stops_the_training(one_thread):
    # The penalty rewards growing weights, so the optimised objective falls while the data
    # loss (the one reported) climbs far above where it started, and stays finite.
    error = _diverged(
        _config(lr=1e-2, optimizer="sgd"),
        penalty=lambda model: -10.0 * model.weight.pow(2).sum(),
        log=None,
    )
    assert error.epoch == 4  # judged once the training has run
    assert "climbed far above its start" in error.reason


def test_flat_and_learning_trainings_are_not_divergence(one_thread):
    torch.manual_seed(0)
    flat = fit(nn.Linear(4, 1), _regression(), None, nn.functional.mse_loss, _config(lr=0.0))
    losses = [row["train_loss"] for row in flat.history]
    assert max(losses) - min(losses) < 1e-6  # it learnt nothing, and that is allowed
    torch.manual_seed(0)
    learnt = fit(nn.Linear(4, 1), _regression(), _regression(1), nn.functional.mse_loss, _config())
    assert learnt.history[-1]["train_loss"] < learnt.history[0]["train_loss"]


def _synthetic(folder):
    from team_code.data.records import RecordSet
    from team_code.data.synth import generate_dataset

    return RecordSet(generate_dataset(folder, 12, seed=3, fs=250, duration_s=6))


def test_a_deep_engine_that_diverges_names_itself_and_the_option(tmp_path, one_thread):
    from team_code.classifiers.parallel_cnn import ParallelCNNClassifier
    from team_code.context import RunContext, Task

    config = dataclasses.replace(ParallelCNNClassifier.quick_config(), lr=1e12, epochs=2)
    with pytest.raises(TrainingDiverged) as caught:
        ParallelCNNClassifier(config).fit(
            _synthetic(tmp_path / "data"), Task(), RunContext(cache_dir="none", progress=False)
        )
    error = caught.value
    assert (error.engine, error.part, error.epoch) == ("parallel_cnn", "all records", 1)
    assert "lower --set parallel_cnn.lr= (now 1e+12)" in str(error)


def test_train_model_exits_non_zero_and_writes_no_model_when_the_training_diverges(
    tmp_path, capsys, one_thread
):
    from team_code.cli.train import main

    _synthetic(tmp_path / "data")
    model = tmp_path / "model"
    options = ["fs_hz=100", "length=200", "filters=4", "n_blocks=2", "epochs=2", "lr=1e12"]
    status = main(
        [str(tmp_path / "data"), str(model), "--classifiers", "parallel_cnn", "--preset", "cpu",
         "--no-progress", "--threads", "1", *[f"--set=parallel_cnn.{o}" for o in options]]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 3, err
    assert "error: parallel_cnn (all records) diverged at epoch 1" in err
    assert "lower --set parallel_cnn.lr=" in err
    assert not (model / "manifest.json").exists()


def test_a_rules_only_training_is_unaffected(tmp_path, capsys, one_thread):
    from team_code.cli.train import main

    _synthetic(tmp_path / "data")
    model = tmp_path / "model"
    status = main(
        [str(tmp_path / "data"), str(model), "--classifiers", "rules", "--no-progress",
         "--threads", "1"]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert (model / "manifest.json").is_file()


@pytest.mark.parametrize("choice", ["global", "per_class"])
def test_a_member_that_diverges_inside_the_hybrid_stops_it_naming_the_fold(
    tmp_path, one_thread, choice
):
    """A member that diverges stops the hybrid's training (train_model.py exits 3), also under
    the per-class choice that drops a member failing for other reasons; the part named is the
    hybrid's fold."""
    from team_code.classifiers.hybrid import HybridClassifier, HybridConfig
    from team_code.classifiers.parallel_cnn import ParallelCNNClassifier
    from team_code.context import RunContext, Task

    cnn = {**dataclasses.asdict(ParallelCNNClassifier.quick_config()), "lr": 1e12}
    config = HybridConfig(
        members=("prevalence", "parallel_cnn"),
        n_folds=2,
        member_options={"parallel_cnn": cnn},
        choice=choice,
    )
    ctx = RunContext(cache_dir="none", progress=False, log=lambda _: None)
    with pytest.raises(TrainingDiverged) as caught:
        HybridClassifier(config).fit(_synthetic(tmp_path / "data"), Task(), ctx)
    error = caught.value
    assert error.engine == "parallel_cnn" and error.epoch == 1
    assert error.part == "hybrid fold 1/2"
    assert "parallel_cnn (hybrid fold 1/2) diverged at epoch 1" in str(error)
    assert "lower --set parallel_cnn.lr=" in str(error)
