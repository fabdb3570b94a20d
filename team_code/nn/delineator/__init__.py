"""A small learned wave delineator: one lead in, none / P / QRS / T per sample out.

A 1-D U-Net labels every sample of each lead; post-processing turns the labels into per-lead
onsets, peaks and offsets per beat, as :class:`team_code.dsp.delineation.LeadDelineation`
(:func:`delineate_record`). ``features.measure`` and the rules keep the wavelet delineation
unless ``FeatureConfig.delineator`` (``--set rules.delineator=cnn``) asks for this one. The
kit's weights are built from the 100 shared LUDB records by :data:`BUILD_COMMAND` into
:data:`WEIGHTS` (``team_code/nn/delineator.safetensors``, or the file
``$ECG_KIT_DELINEATOR_WEIGHTS`` names; :func:`weights_path`); they are not kept in git, and
nothing is ever downloaded.

One module per job; every name of :data:`__all__` (and the label constants, the data loaders
and the command line's ``main``) is re-exported here. Importing the package, or any module in
it, loads torch; the modules marked "no torch" do not import it themselves:

- :mod:`~team_code.nn.delineator.inputs`: the network's rate, classes and input
  (:func:`prepare`); no torch;
- :mod:`~team_code.nn.delineator.net`: :class:`SegmentNet`, :class:`NetConfig`, its weights
  file (:func:`save`, :func:`load`, :func:`weights_path`);
- :mod:`~team_code.nn.delineator.inference`: :func:`predict_logits`,
  :func:`predict_labels`, :func:`delineate_record` (and :func:`delineate_together`, for a
  network that reads the twelve leads at once: compared, not shipped);
- :mod:`~team_code.nn.delineator.post`: :class:`PostConfig`, :func:`segments_to_beats`
  (labels to per-lead beats); no torch;
- :mod:`~team_code.nn.delineator.data`: training data from LUDB's and QTDB's marks
  (:func:`ludb_labels`, :func:`qtdb_labels`, :func:`load_ludb`, :func:`load_qtdb`; the
  twelve leads' union, :func:`global_labels`, :func:`load_ludb_together`) and record folds
  (:func:`fold_split`); no torch;
- :mod:`~team_code.nn.delineator.training`: :class:`TrainConfig`, :func:`train`;
- :mod:`~team_code.nn.delineator.cli`: ``python -m team_code.nn.delineator train|folds``.
"""

from team_code.nn.delineator.cli import get_parser, main  # noqa: F401
from team_code.nn.delineator.data import (  # noqa: F401
    GLOBAL_MIN_LEADS,
    LUDB_LEADS,
    QTDB_SAME_BEAT_S,
    QTDB_WINDOW,
    fold_split,
    global_labels,
    load_ludb,
    load_ludb_together,
    load_qtdb,
    ludb_labels,
    qtdb_labels,
    read_qtdb,
)
from team_code.nn.delineator.inference import (
    delineate_record,
    delineate_together,
    predict_labels,
    predict_logits,
)
from team_code.nn.delineator.inputs import (  # noqa: F401
    CLASSES,
    FS,
    IGNORE,
    MIN_SCALE_MV,
    NONE,
    QRS,
    P,
    T,
    check_channels,
    prepare,
)
from team_code.nn.delineator.net import (
    BUILD_COMMAND,
    WEIGHTS,
    WEIGHTS_ENV,
    NetConfig,
    SegmentNet,
    load,
    save,
    weights_path,
)
from team_code.nn.delineator.post import PostConfig, close_gaps, segments_to_beats, subsample_edges
from team_code.nn.delineator.training import TrainConfig, edge_weights, train  # noqa: F401

__all__ = [
    "FS",
    "CLASSES",
    "WEIGHTS",
    "WEIGHTS_ENV",
    "BUILD_COMMAND",
    "weights_path",
    "NetConfig",
    "PostConfig",
    "TrainConfig",
    "SegmentNet",
    "prepare",
    "predict_labels",
    "predict_logits",
    "close_gaps",
    "subsample_edges",
    "segments_to_beats",
    "delineate_record",
    "delineate_together",
    "load",
    "save",
    "ludb_labels",
    "qtdb_labels",
    "train",
    "fold_split",
]
