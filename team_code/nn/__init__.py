"""Torch building blocks shared by the deep models.

- :mod:`team_code.nn.device`: ``pick_device("auto" | "cpu" | "cuda" | "cuda:N")``, autocast
  settings;
- :mod:`team_code.nn.training`: ``TrainConfig``, ``fit`` (seeded, mixed precision on CUDA,
  atomic resumable checkpoints, history CSV, early stopping, DDP under ``torchrun``),
  ``predict``, ``set_seed``, ``balanced_weights``;
- :mod:`team_code.nn.cache`: network inputs cached as one ``.npy`` per record and
  preprocessing key (:mod:`team_code.record_cache`), and a ``Dataset`` that reads them;
- :mod:`team_code.nn.distributed`: the ``torchrun`` environment, process group, rank-0 helpers;
- :mod:`team_code.nn.layers`: grouped layers (``GroupedLinear``);
- :mod:`team_code.nn.delineator`: a small learned wave delineator (one lead in, none / P /
  QRS / T per sample out), its training command and the weights it builds.

Nothing here runs at import time; every submodule imports torch.
"""
