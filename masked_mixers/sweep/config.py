"""The sweep schema: a base train config and the points to train from it, each a set of dotted overrides.

A sweep config (YAML, read with the checked loader of core/configfile.py, which refuses a key
written twice) names:

  base: a train config (a path relative to the sweep file, or the config itself inline)
  grid: dotted key -> list of values; the points are the Cartesian product of the lists. A key
    without a dot is a bundle: its values are mappings of dotted keys that move together (a
    family with its own knobs, a width with its depth).
  points: more points, each a mapping of dotted keys (added after the grid's).
  name: a template for point folder names, e.g. "{model.family}-d{model.hidden_size}" (any key of
    the resolved run config, with an optional format spec: {train.max_flops:.0e}); null derives a
    name from the point's overrides (mixer_d64_l4_L128_lr0.003_C1e12).
  engine: where points run (engines.py): local (a process pool, nothing to start) or submitit (SLURM,
    or submitit's local mode).
  select_learning_rate: {values: [...], at_budget: smallest}: train every size (the point without
    its learning rate and budget) at each rate at one budget first; every point then takes its
    size's best rate (lowest held-out loss). The points must not set train.learning_rate.
  analysis: scaling: fit the frontier when the sweep ends (masked_mixers.scaling).

Every point is resolved to a full RunConfig, and checked, before anything is trained.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..core.configfile import at_least, from_dict, load_mapping, require, set_key, to_dict
from ..core.errors import UserError
from ..runs.config import RunConfig

LEARNING_RATE = "train.learning_rate"
BUDGET = "train.max_flops"
OUTPUT_DIR = "train.output_dir"
POINTS_DIR = "points"
# default point names: these keys first, abbreviated (an empty abbreviation shows the value alone)
ABBREVIATIONS = {
    "model.family": "",
    "model.mixer_type": "",
    "model.hidden_size": "d",
    "model.num_hidden_layers": "l",
    "model.num_heads": "h",
    "model.seq_len": "L",
    LEARNING_RATE: "lr",
    BUDGET: "C",
}
_TEMPLATE_FIELD = re.compile(r"\{([A-Za-z0-9_.]+)(?::([^{}]*))?\}")


@dataclass
class EngineConfig:
    """Where the points run.

    name: "local" (concurrent.futures.ProcessPoolExecutor, spawned workers reused for every point) or
      "submitit" (one job per point through submitit: SLURM, or its local mode).
    workers: points in flight at once; null: 1 for local (torch already uses every core), every
      ready point for submitit (the cluster's scheduler queues them).
    cluster: submitit's cluster: "slurm", "local" (subprocesses on this machine) or "debug" (in this
      process); null lets submitit detect it (slurm where sbatch exists).
    parameters: submitit's update_parameters, e.g. {timeout_min: 240, gpus_per_node: 1,
      cpus_per_task: 8, mem_gb: 32, slurm_partition: gpu}.
    poll_seconds: how often submitit jobs are checked.
    """

    name: Literal["local", "submitit"] = "local"
    workers: int | None = None
    cluster: str | None = None
    parameters: dict[str, str | bool | int | float | list[str]] = field(default_factory=dict)
    poll_seconds: float = 1.0

    def validate(self) -> None:
        at_least(self, 1, "workers", optional=True)
        require(self.poll_seconds > 0, "poll_seconds", self.poll_seconds, "must be positive")
        require(self.name == "submitit" or self.cluster is None, "cluster", self.cluster, "is for engine submitit")
        require(self.name == "submitit" or not self.parameters, "parameters", self.parameters, "are for submitit")


@dataclass
class LearningRateSelection:
    """values: the learning rates tried; at_budget: the train.max_flops they are tried at ("smallest" of the
    points' budgets, or a number)."""

    values: list[float] = field(default_factory=list)
    at_budget: float | Literal["smallest"] = "smallest"

    def validate(self) -> None:
        require(bool(self.values), "values", self.values, "must list at least one learning rate")
        for rate in self.values:
            require(math.isfinite(rate) and rate > 0, "values", rate, "must hold positive learning rates")
        budget = self.at_budget
        require(budget == "smallest" or budget > 0, "at_budget", budget, "must be 'smallest' or positive")


@dataclass
class SweepConfig:
    """A whole sweep (see the module docstring)."""

    base: str | dict[str, object] = field(default_factory=dict)
    grid: dict[str, list[object]] = field(default_factory=dict)
    points: list[dict[str, object]] = field(default_factory=list)
    name: str | None = None
    output_dir: str = "runs/sweep"
    engine: EngineConfig = field(default_factory=EngineConfig)
    select_learning_rate: LearningRateSelection | None = None
    analysis: Literal["scaling"] | None = None


@dataclass(frozen=True)
class Point:
    """One training run of the sweep: its folder name, its overrides and the resolved run config (plain data)."""

    name: str
    overrides: dict
    run: dict


def load_sweep_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read a sweep config YAML (with --set overrides of its own keys, e.g. engine.workers=2)."""
    from ..core.configfile import apply_overrides

    raw = apply_overrides(load_mapping(path, "sweep keys (base, grid, points, engine, ...)"), overrides or [])
    return from_dict(SweepConfig, raw, str(path))


def base_mapping(config: SweepConfig, source: str | Path) -> dict:
    """The base train config as a raw mapping: the file `base` names (relative to the sweep file), or `base` itself."""
    if isinstance(config.base, str):
        return load_mapping(Path(source).parent / config.base, "sections (model, data, train)")
    return dict(config.base)


def override_sets(config: SweepConfig, source: str | Path) -> list[dict]:
    """The points' overrides in order: the grid's product, then `points`; each a flat {dotted key: value}."""
    axes = []
    for key, values in config.grid.items():
        if not values:
            raise UserError(f"{source}: grid key {key!r} lists no values")
        axes.append([_bundle(source, key, v) if "." not in key else {key: v} for v in values])
    sets = [_merge(source, combo) for combo in itertools.product(*axes)] if axes else []
    for index, point in enumerate(config.points):
        sets.append(_merge(source, [_bundle(source, f"points[{index}]", point)]))
    if not sets:
        raise UserError(f"{source}: no points; give a grid or a list of points")
    for overrides in sets:
        if OUTPUT_DIR in overrides:
            raise UserError(f"{source}: {OUTPUT_DIR} is set by the sweep (SWEEP_DIR/points/NAME); leave it out")
        if config.select_learning_rate is not None and LEARNING_RATE in overrides:
            raise UserError(
                f"{source}: {LEARNING_RATE} is chosen by select_learning_rate; leave it out of the grid and points"
            )
    return sets


def _bundle(source, where: str, value) -> dict:
    if not isinstance(value, dict) or not all(isinstance(k, str) and "." in k for k in value):
        raise UserError(
            f"{source}: {where} must map dotted config keys to values (e.g. model.hidden_size: 64), got {value!r}"
        )
    return dict(value)


def _merge(source, parts) -> dict:
    merged: dict = {}
    for part in parts:
        for key, value in part.items():
            if key in merged and merged[key] != value:
                raise UserError(f"{source}: key {key!r} is set twice in one point ({merged[key]!r} and {value!r})")
            merged[key] = value
    return merged


def resolve(base: dict, overrides: dict, source: str) -> RunConfig:
    """The base config with `overrides` (dotted keys) applied, checked as a RunConfig; `source` names it in errors."""
    data = with_keys(base, overrides)
    if "model" not in data:
        raise UserError(f"{source}: no 'model' section in the base config or the point; say which model to train")
    return from_dict(RunConfig, data, source)


def with_keys(base: dict, overrides: dict) -> dict:
    """A copy of the raw mapping `base` with the dotted `overrides` set (`base` itself is not changed)."""
    data = dict(base)
    for dotted, value in overrides.items():
        set_key(data, dotted.split("."), value)
    return data


def make_point(config: SweepConfig, base: dict, overrides: dict, sweep_dir: Path, source: str) -> Point:
    """A Point: its run config resolved (train.output_dir = SWEEP_DIR/points/NAME) and its name."""
    run = resolve(base, overrides, f"{source} (point {_default_name(overrides) or 'base'})")
    flat = _flatten(to_dict(run))
    name = _template_name(config.name, flat, source) if config.name else _default_name(overrides) or "base"
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("-.") or "point"
    run.train.output_dir = str(sweep_dir / POINTS_DIR / name)
    return Point(name=name, overrides=dict(overrides), run=to_dict(run))


def check_unique(points: list[Point], source: str) -> None:
    """Two points must not share a folder (a name template that leaves out a swept key)."""
    seen: dict[str, dict] = {}
    for point in points:
        if point.name in seen and seen[point.name] != point.overrides:
            raise UserError(
                f"{source}: points {seen[point.name]} and {point.overrides} would share the folder {point.name!r}; "
                "put the differing keys into `name`"
            )
        seen[point.name] = point.overrides


def _flatten(data, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _value_text(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", text)  # 2e+08 -> 2e8, 1e-05 -> 1e-5


def _default_name(overrides: dict) -> str:
    order = list(ABBREVIATIONS)
    other = order.index(LEARNING_RATE) - 0.5  # other keys between the sizes and the learning rate
    keys = sorted(overrides, key=lambda k: (order.index(k) if k in order else other, k))
    return "_".join(f"{ABBREVIATIONS.get(k, k.rsplit('.', 1)[-1] + '-')}{_value_text(overrides[k])}" for k in keys)


def _template_name(template: str, flat: dict, source) -> str:
    def field_text(match: re.Match) -> str:
        key, spec = match.group(1), match.group(2)
        if key not in flat:
            raise UserError(f"{source}: name template names {key!r}, which is not a key of the run config")
        try:
            return format(flat[key], spec) if spec else _value_text(flat[key])
        except (TypeError, ValueError) as err:
            raise UserError(f"{source}: name template field {match.group(0)!r}: {err}") from None

    return _TEMPLATE_FIELD.sub(field_text, template)


__all__ = [
    "BUDGET",
    "EngineConfig",
    "LEARNING_RATE",
    "LearningRateSelection",
    "POINTS_DIR",
    "Point",
    "SweepConfig",
    "base_mapping",
    "check_unique",
    "load_sweep_config",
    "make_point",
    "override_sets",
    "resolve",
    "with_keys",
]
