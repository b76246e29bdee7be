"""Run a sweep: plan its points, run them on the engine, gather the rows, resume what a kill left.

SWEEP_DIR holds sweep.yaml (the resolved sweep config, base inlined), points/NAME/ (each an ordinary
`train` run folder), logs/NAME.log (what each point printed), results.jsonl (results.py),
learning_rates.json (select_learning_rate's choices) and the manifest of what the toolkit wrote
there (runs/manifest.py): a folder holding anything else is refused, and nothing is ever deleted.

Resume: a point whose latest row is "done" and whose folder holds a finished run is skipped; any
other point runs, and `train` resumes its folder from the newest checkpoint (a point killed
mid-way) or reads back a run that finished before its row was written. Failed points run again.

Progress: one bar over the points with an ETA. When every point has a train.max_flops budget the
bar counts training FLOPs, so a point's share of the ETA follows its cost; else it counts points.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..compare.report import _git_revision as git_revision  # one definition, shared with compare reports
from ..core.configfile import to_dict
from ..core.errors import UserError, reason
from ..core.files import atomic_write_text, make_dir
from ..core.progress import progress_bar
from ..runs import manifest
from ..runs.rundir import read_summary
from .config import (
    BUDGET,
    LEARNING_RATE,
    POINTS_DIR,
    Point,
    SweepConfig,
    base_mapping,
    check_unique,
    make_point,
    override_sets,
    with_keys,
)
from .engines import SUBMITIT_DIR, make_engine
from .points import failed_row, run_point
from .results import LEARNING_RATES, RESULTS, append_row, best_rate, latest, read_rows, write_learning_rates

SWEEP = "sweep"  # the manifest's kind
SWEEP_CONFIG = "sweep.yaml"
LOGS = "logs"
LOCK = ".lock"
ANALYSIS_FILES = ("scaling.json", "scaling.md", "scaling.png")  # what masked_mixers.scaling.write_report writes
NAMES = (SWEEP_CONFIG, POINTS_DIR, LOGS, RESULTS, LEARNING_RATES, SUBMITIT_DIR, LOCK, *ANALYSIS_FILES)


@dataclass
class SweepOutcome:
    """What one `run_sweep` call did: points in the sweep, run now, skipped as finished, failed."""

    sweep_dir: Path
    points: int = 0
    ran: int = 0
    skipped: int = 0
    failed: int = 0


class Plan:
    """The sweep's points, resolved and checked before anything runs."""

    def __init__(self, config: SweepConfig, source: str, base_overrides: dict | None = None):
        self.config, self.source = config, source
        self.sweep_dir = Path(config.output_dir).expanduser()
        self.base = with_keys(base_mapping(config, source), base_overrides or {})  # --data, --set base.KEY=...
        self.sets = []  # the points' overrides (without the learning rate a selection adds), each point once
        seen: set[str] = set()
        sets = override_sets(config, source)
        points = [self.point(self.probe(s)) for s in sets]  # every point resolved and checked now
        check_unique(points, source)
        for overrides, point in zip(sets, points):
            if point.name not in seen:
                seen.add(point.name)
                self.sets.append(overrides)

    def probe(self, overrides: dict) -> dict:
        """`overrides` at the first rate of select_learning_rate (as is without one): what checks a point before
        its rate is chosen."""
        selection = self.config.select_learning_rate
        return {**overrides, LEARNING_RATE: selection.values[0]} if selection else overrides

    def point(self, overrides: dict) -> Point:
        return make_point(self.config, self.base, overrides, self.sweep_dir, self.source)

    def main_points(self, rates: dict[str, float] | None = None) -> list[Point]:
        """Every point; under select_learning_rate at its size's chosen rate (sizes without one are left out)."""
        if self.config.select_learning_rate is None:
            return [self.point(s) for s in self.sets]
        return [self.point({**s, LEARNING_RATE: rates[_size(s)]}) for s in self.sets if rates.get(_size(s))]

    def sizes(self) -> dict[str, list[dict]]:
        """size key -> the override sets of that size (select_learning_rate's groups), in order."""
        groups: dict[str, list[dict]] = {}
        for s in self.sets:
            groups.setdefault(_size(s), []).append(s)
        return groups

    def rate_points(self, size_sets: list[dict]) -> list[Point]:
        """The points that choose one size's learning rate: each rate of the selection at its budget."""
        selection = self.config.select_learning_rate
        budgets = [self.point(s).run["train"]["max_flops"] for s in size_sets]
        at = selection.at_budget
        if at == "smallest":
            if None in budgets:
                raise UserError(
                    f"{self.source}: select_learning_rate.at_budget 'smallest' needs train.max_flops in every point"
                )
            at = min(budgets)
        sizes = {k: v for k, v in size_sets[0].items() if k != BUDGET}
        base_budget = self.point(sizes).run["train"]["max_flops"]
        with_budget = any(BUDGET in s for s in size_sets) or at != base_budget
        return [
            self.point({**sizes, **({BUDGET: at} if with_budget else {}), LEARNING_RATE: v}) for v in selection.values
        ]


def _size(overrides: dict) -> str:
    return json.dumps(sorted((k, v) for k, v in overrides.items() if k not in (LEARNING_RATE, BUDGET)), default=str)


def run_sweep(
    config: SweepConfig, source: str, base_overrides: dict | None = None, progress: bool = True
) -> SweepOutcome:
    """Run (or resume) the sweep `config` read from `source` into config.output_dir; `base_overrides`
    ({dotted key: value}) change every point's base config."""
    plan = Plan(config, source, base_overrides)
    sweep_dir = plan.sweep_dir
    _claim(sweep_dir)
    with _locked(sweep_dir):
        _save_config(config, plan.base, sweep_dir)
        outcome = SweepOutcome(sweep_dir)
        runner = _Runner(config, sweep_dir, outcome)
        try:
            with runner.bar(plan, progress):
                if config.select_learning_rate is None:
                    runner.run(plan.main_points())
                else:
                    runner.run(_select_rates(plan, runner))
        finally:
            runner.engine.close()
    return outcome


def _select_rates(plan: Plan, runner: _Runner) -> list[Point]:
    """Run every size's learning-rate points, record the choices, return the main points at the chosen rates."""
    sizes = plan.sizes()
    candidates = {size: plan.rate_points(sets) for size, sets in sizes.items()}
    runner.run([p for points in candidates.values() for p in points])
    rows = latest(read_rows(plan.sweep_dir))
    rates, choices = {}, []
    for size, points in candidates.items():
        tried = [rows[p.name] for p in points if p.name in rows]
        rates[size] = best_rate(tried)
        choices.append(
            {
                "size": {k: v for k, v in sizes[size][0].items() if k != BUDGET},
                "budget_flops": points[0].run["train"]["max_flops"],
                "eval_loss": {str(r["learning_rate"]): r.get("eval_loss") for r in tried},
                "chosen": rates[size],
            }
        )
        if rates[size] is None:
            runner.fail_size(plan, sizes[size])
    write_learning_rates(plan.sweep_dir, choices)
    return plan.main_points(rates)


class _Runner:
    """Submits points to the engine, at most engine.workers at once, and writes each row as it comes back."""

    def __init__(self, config: SweepConfig, sweep_dir: Path, outcome: SweepOutcome):
        self.sweep_dir, self.outcome = sweep_dir, outcome
        self.revision = git_revision()
        self.engine = make_engine(config.engine, sweep_dir)
        self.progress = None
        self.by_flops = False
        self.counted: set[str] = set()  # point names accounted for

    @contextmanager
    def bar(self, plan: Plan, show: bool) -> Iterator[None]:
        points = [plan.point(plan.probe(s)) for s in plan.sets]
        if plan.config.select_learning_rate:
            points += [p for group in plan.sizes().values() for p in plan.rate_points(group)]
        self.by_flops = all(p.run["train"]["max_flops"] for p in points)
        total = sum(self._weight(p) for p in points)
        unit = {"unit": "FLOP", "unit_scale": True} if self.by_flops else {"unit": "point"}
        with progress_bar(total=total, desc="sweep", disable=not show, **unit) as self.progress:
            yield

    def _weight(self, point: Point) -> float:
        return point.run["train"]["max_flops"] if self.by_flops else 1

    def _count(self, point: Point, row: dict | None) -> None:
        """Account for a point: run now (row), or skipped as finished (None: the bar's total shrinks); a main point
        that a rate point of this call already was (same name) is not counted twice."""
        if row is None:
            self.progress.total -= self._weight(point)
            self.progress.refresh()
            if point.name in self.counted:
                return
            self.outcome.skipped += 1
        else:
            self.outcome.ran += 1
            self.outcome.failed += row["status"] == "failed"
            self.progress.update(self._weight(point))
        self.counted.add(point.name)
        self.outcome.points += 1
        self.progress.set_postfix_str(
            f"{self.outcome.points} points ({self.outcome.skipped} skipped, {self.outcome.failed} failed)"
        )

    def run(self, points: list[Point]) -> None:
        rows = latest(read_rows(self.sweep_dir))
        queue: deque[Point] = deque()
        for point in points:
            row = rows.get(point.name)
            if row and row.get("status") == "done" and read_summary(point.run["train"]["output_dir"]) is not None:
                self._count(point, None)
            else:
                queue.append(point)
        pending: dict = {}
        while queue or pending:
            while queue and len(pending) < self.engine.workers:
                point = queue.popleft()
                log = str(self.sweep_dir / LOGS / f"{point.name}.log")
                pending[self.engine.submit(run_point, point, log, self.revision)] = point
            self.engine.wait(list(pending))
            for handle in [h for h in pending if h.done()]:
                point = pending.pop(handle)
                self._record(point, self._row(handle, point))

    def _row(self, handle, point: Point) -> dict:
        try:
            return handle.result()
        except Exception as err:  # the worker died (killed, out of memory) or the cluster job failed
            return failed_row(point, self.revision, f"the job running it failed ({type(err).__name__}: {reason(err)})")

    def _record(self, point: Point, row: dict) -> None:
        append_row(self.sweep_dir, row)
        self._count(point, row)

    def fail_size(self, plan: Plan, size_sets: list[dict]) -> None:
        """Every point of a size none of whose learning rates finished: a failed row each, nothing trained."""
        rates = plan.config.select_learning_rate.values
        for overrides in size_sets:
            point = plan.point(overrides)  # named without a rate: never one of the rate points' names
            row = failed_row(point, self.revision, f"no learning rate of {rates} finished for this size")
            self._record(point, {**row, "learning_rate": None})


def _claim(sweep_dir: Path) -> None:
    manifest.check_destination(sweep_dir, SWEEP, "--output-dir")
    make_dir(sweep_dir)
    manifest.record(sweep_dir, *NAMES, what=SWEEP)


@contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
    """One `sweep` per folder at a time (an advisory lock the kernel drops when the process dies)."""
    with open(sweep_dir / LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"{sweep_dir}: another `sweep` is running in this folder; wait for it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def _save_config(config: SweepConfig, base: dict, sweep_dir: Path) -> None:
    data = {**to_dict(config), "base": base}
    atomic_write_text(sweep_dir / SWEEP_CONFIG, yaml.safe_dump(data, sort_keys=False))


__all__ = ["NAMES", "Plan", "SWEEP", "SWEEP_CONFIG", "SweepOutcome", "run_sweep"]
