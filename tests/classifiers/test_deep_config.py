"""One DeepConfig for the deep engines, and their (and the beat networks') thresholds through
the decision policy of team_code.classifiers.decision: the options users name (``--set``,
presets, saved ``config.json``) as before, the same thresholds as the direct calls they
replace."""

from __future__ import annotations

import dataclasses
import json
import typing

import numpy as np
import pytest
import torch

from team_code.classifiers.beats import BeatsClassifier
from team_code.classifiers.cwt_googlenet import CWTGoogLeNetClassifier, CWTGoogLeNetConfig
from team_code.classifiers.decision import NAMED_POLICIES
from team_code.classifiers.deep import DeepClassifier, DeepConfig, floor_thresholds
from team_code.classifiers.parallel_cnn import ParallelCNNClassifier, ParallelCNNConfig
from team_code.classifiers.thresholds import NEVER, challenge_thresholds, youden_thresholds
from team_code.context import Task
from team_code.options import configure, parse_options

FAMILIES = (ParallelCNNClassifier, CWTGoogLeNetClassifier)

# The defaults each family's config saved in config.json before the shared options moved to
# DeepConfig, in the order they were saved (dataclasses.asdict of the configs at 68b6367).
SAVED_BEFORE = {
    "parallel_cnn": {
        "fs_hz": 500.0, "length": 10000, "filters": 64, "n_blocks": 7, "dropout": 0.3,
        "conv_dropout": 0.0, "head": "pool", "highpass_hz": 0.5, "input_scale": "none",
        "augment_gain": 0.0, "augment_shift": False, "epochs": 30, "batch_size": 32,
        "lr": 0.0001, "grad_clip": 0.5, "l1": 1e-06, "l2": 1e-05, "weight_decay": 0.0,
        "lr_decay_rate": 1.0, "lr_decay_steps": 0, "patience": 5, "seed": 0,
        "val_fraction": 0.2, "threshold_method": "challenge", "threshold_split": "validation",
        "source_vote": "net", "threshold_min_positives": 5, "source_min_positives": 10,
        "source_ensemble": False, "label_mask": "none", "source_balance": False,
        "balanced_sampling": False, "amp": True, "amp_dtype": "auto", "cache_dtype": "float16",
    },
    "cwt_googlenet": {
        "image_size": 224, "color": "jet", "fs_hz": 250.0, "rhythm_s": 10.0, "margin_s": 2.0,
        "rhythm_band_hz": [0.7, 40.0], "beat_band_hz": [2.0, 40.0], "n_scales": 56,
        "ref_mv": 0.02, "max_mv": 2.0, "pretrained_weights": "", "aux_weight": 0.3,
        "dropout": 0.2, "epochs": 30, "batch_size": 0, "lr": 0.0001, "weight_decay": 0.0001,
        "patience": 5, "n_max": 2000, "max_copies": 10, "val_fraction": 0.2,
        "threshold_method": "challenge", "threshold_split": "validation", "source_vote": "net",
        "threshold_min_positives": 5, "source_min_positives": 10, "source_ensemble": False,
        "label_mask": "none", "source_balance": False, "amp": True, "amp_dtype": "auto",
        "cache_dtype": "float16", "scalogram_device": "auto", "channels_last": True, "seed": 0,
    },
}  # fmt: skip

# A valid value other than the default for each text option (a new one must be added here).
OTHER_TEXT = {
    "threshold_method": "youden",
    "threshold_split": "sources",
    "source_vote": "majority",
    "label_mask": "source",
    "amp_dtype": "bf16",
    "cache_dtype": "float32",
    "head": "dense",
    "input_scale": "lead",
    "color": "gray",
    "pretrained_weights": "none",
    "scalogram_device": "cpu",
}


def _other(name, hint, default):
    """A valid non-default value of a field and its command-line text."""
    if hint is bool:
        return (not default), str(not default).lower()
    if hint is int:
        return default + 1, str(default + 1)
    if hint is float:
        return default + 0.5, repr(default + 0.5)
    if typing.get_origin(hint) is tuple:
        value = tuple(v + 1.0 for v in default)
        return value, ",".join(repr(v) for v in value)
    return OTHER_TEXT[name], OTHER_TEXT[name]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_the_saved_options_and_their_defaults_are_those_of_before(family):
    saved = json.loads(json.dumps(dataclasses.asdict(family.Config())))
    assert saved == SAVED_BEFORE[family.name]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_shared_option_lives_in_deep_config(family):
    shared = {f.name for f in dataclasses.fields(DeepConfig)}
    assert issubclass(family.Config, DeepConfig)
    assert shared <= {f.name for f in dataclasses.fields(family.Config)}
    # an option both families have is shared, unless it describes the network (dropout)
    common = set.intersection(*({f.name for f in dataclasses.fields(f.Config)} for f in FAMILIES))
    assert common - shared == {"dropout", "fs_hz"}
    # a family redeclares a shared option only to change its default
    for name in shared & set(vars(family.Config)["__annotations__"]):
        assert getattr(family.Config(), name) != getattr(DeepConfig(), name), name


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_every_option_can_be_set_on_the_command_line(family):
    hints = typing.get_type_hints(family.Config)
    default = family.Config()
    for field in dataclasses.fields(family.Config):
        value, text = _other(field.name, hints[field.name], getattr(default, field.name))
        configs = configure([family.name], parse_options([f"{family.name}.{field.name}={text}"]))
        assert getattr(configs[family.name], field.name) == value, field.name


def test_the_cpu_preset_reaches_the_shared_options():
    configs = configure(["parallel_cnn", "cwt_googlenet"], {}, preset="cpu")
    cnn, googlenet = configs["parallel_cnn"], configs["cwt_googlenet"]
    assert (cnn.threshold_split, cnn.source_vote, cnn.label_mask) == (
        "sources",
        "majority",
        "source",
    )
    assert (cnn.epochs, cnn.batch_size, cnn.lr, cnn.source_balance) == (10, 8, 0.001, True)
    assert (googlenet.epochs, googlenet.batch_size, googlenet.lr) == (3, 16, 0.001)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("threshold_method", "vote", r"unknown ParallelCNNConfig threshold_method 'vote'; known"),
        ("threshold_method", "f1", "threshold_method"),
        ("threshold_split", "folds", "threshold_split must be one of"),
        ("source_vote", "most", "source_vote must be one of"),
        ("label_mask", "hospital", "label_mask must be one of"),
        ("batch_size", -1, "batch_size must be >= 0"),
    ],
)
def test_bad_shared_options_are_refused_where_the_config_is_built(option, value, message):
    with pytest.raises(ValueError, match=message):
        ParallelCNNConfig(**{option: value})
    with pytest.raises(ValueError, match="parallel_cnn: .*" + message.split(" ")[0]):
        configure(["parallel_cnn"], parse_options([f"parallel_cnn.{option}={value}"]))


def test_threshold_methods_are_named_policies():
    for method in ("challenge", "youden"):
        assert method in NAMED_POLICIES
        assert ParallelCNNConfig(threshold_method=method).threshold_method == method
        assert BeatsClassifier.Config(threshold_method=method).threshold_method == method
    with pytest.raises(ValueError, match=r"unknown beats threshold_method 'half'"):
        BeatsClassifier.Config(threshold_method="half")


def test_a_deep_engine_takes_its_own_config_only():
    with pytest.raises(TypeError, match="config must be a ParallelCNNConfig"):
        ParallelCNNClassifier(CWTGoogLeNetConfig())
    with pytest.raises(TypeError, match="config must be a CWTGoogLeNetConfig"):
        CWTGoogLeNetClassifier(DeepConfig())


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_a_model_folder_saved_before_loads(family, tmp_path):
    """A folder whose config.json holds the options as the configs saved them before (their
    order) loads to the same config, thresholds and weights."""
    torch.manual_seed(0)
    config = family.quick_config()
    model = family(config)
    model._begin(Task(), None)
    model.network_ = model.build_network().eval()
    model.thresholds_ = np.linspace(0.1, 0.9, len(model.classes_))
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    meta = json.loads(path.read_text())
    written = json.loads(json.dumps(dataclasses.asdict(config)))
    meta["config"] = {name: written[name] for name in SAVED_BEFORE[family.name]}
    assert list(meta["config"]) != [f.name for f in dataclasses.fields(family.Config)]
    path.write_text(json.dumps(meta))
    loaded = family.load(tmp_path / "m")
    assert loaded.config == config
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)
    for name, tensor in model.network_.state_dict().items():
        assert torch.equal(loaded.network_.state_dict()[name], tensor), name


# --------------------------------------------------------------------------------------------
# Thresholds: the decision policy gives the numbers of the direct calls it replaced


def _held_out(seed=3, n=160):
    task = Task()
    rng = np.random.default_rng(seed)
    n_classes = len(task.classes)
    truth = rng.random((n, n_classes)) < np.linspace(0.03, 0.4, n_classes)
    scores = np.clip(0.3 * truth + 0.75 * rng.random(truth.shape), 0, 1)
    groups = np.array(["A", "E", "HR", "Q"])[rng.integers(0, 4, n)]
    return task, truth, scores, groups


def _deep(task, **options) -> DeepClassifier:
    model = ParallelCNNClassifier(ParallelCNNConfig(**options))
    model._begin(task, None)
    return model


def test_deep_challenge_thresholds_equal_the_direct_search():
    task, truth, scores, _ = _held_out()
    floor_truth = truth[:100]  # the floor from the training rows, the search on the others
    model = _deep(task, threshold_min_positives=4)
    chosen = model.choose_thresholds(truth[100:], scores[100:], floor_truth)
    start = floor_thresholds(floor_truth, model.classes_, task.scored)
    direct = challenge_thresholds(
        truth[100:],
        scores[100:],
        model.classes_,
        start=start,
        min_positives=4,
        scored=task.scored,
        groups=None,
        vote="net",
    )
    np.testing.assert_array_equal(chosen, direct)
    assert (direct != start).any()  # the search moved: the comparison is not vacuous


def test_deep_youden_thresholds_equal_the_direct_call():
    task, truth, scores, groups = _held_out()
    model = _deep(task, threshold_method="youden")
    np.testing.assert_array_equal(
        model.choose_thresholds(truth, scores, truth), youden_thresholds(truth, scores)
    )
    np.testing.assert_array_equal(
        model.choose_thresholds(truth, scores, truth, groups), youden_thresholds(truth, scores)
    )


@pytest.mark.parametrize("vote", ["net", "majority"])
def test_deep_out_of_source_thresholds_equal_the_direct_search_with_the_vote(vote):
    task, truth, scores, groups = _held_out()
    model = _deep(task, source_vote=vote, source_min_positives=6, threshold_min_positives=40)
    chosen = model.choose_thresholds(truth, scores, truth, groups)
    start = floor_thresholds(truth, model.classes_, task.scored)
    direct = challenge_thresholds(
        truth,
        scores,
        model.classes_,
        start=start,
        min_positives=6,
        scored=task.scored,
        groups=groups,
        vote=vote,
    )
    np.testing.assert_array_equal(chosen, direct)
    without_vote = challenge_thresholds(
        truth, scores, model.classes_, start=start, min_positives=6, scored=task.scored
    )
    assert (direct != start).any() and (direct != without_vote).any()  # the vote mattered


@pytest.mark.parametrize("method", ["challenge", "youden"])
def test_beats_thresholds_equal_the_direct_calls(method):
    task, truth, scores, _ = _held_out(seed=5)
    model = BeatsClassifier(BeatsClassifier.Config(threshold_method=method))
    model._begin(task, None)
    with_evidence = model.classes_[::3]
    model.logistic_ = {code: {} for code in with_evidence}
    constant = [j for j, code in enumerate(model.classes_) if code not in with_evidence]
    scores[:, constant] = truth[:, constant].mean(axis=0)  # prevalence: a constant score
    if method == "youden":
        direct = youden_thresholds(truth, scores)
    else:
        start = youden_thresholds(truth, scores)
        start[constant] = NEVER
        direct = challenge_thresholds(
            truth, scores, model.classes_, start=start, scored=task.scored
        )
        assert (direct != start).any()
    np.testing.assert_array_equal(model.choose_thresholds(truth, scores), direct)
