"""`masked-mixers sweep`: many ordinary `train` runs from one base config over a grid or list of overrides,
on a local process pool or a cluster (submitit), resumable, one row per point in results.jsonl
(docs/sweeps.md). The analysis of the table (the compute frontier) is masked_mixers.scaling.

The runner (runner.py) is imported by the command only: a worker unpickling `run_point` needs none of it."""

from .config import EngineConfig, LearningRateSelection, Point, SweepConfig, load_sweep_config
from .points import ROW_KEYS, run_point
from .results import read_rows

__all__ = [
    "EngineConfig",
    "LearningRateSelection",
    "Point",
    "ROW_KEYS",
    "SweepConfig",
    "load_sweep_config",
    "read_rows",
    "run_point",
]
