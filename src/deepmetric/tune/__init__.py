"""Hyper-parameter search on Optuna (``deepmetric tune``): space files, class-disjoint
validation, pruning, resumable RDB studies shared by many workers, ``best.yaml`` and a study
report. Needs the ``tune`` extra (``pip install deepmetric[tune]``)."""

from .space import Param, Space, SpaceError, load_space
from .study import open_study, run_study, write_best

__all__ = ["Param", "Space", "SpaceError", "load_space", "open_study", "run_study", "write_best"]
