"""A sweep's results.jsonl: reading it, checking its rows, and picking each model size's best learning rate.

One JSON object per line, appended by the sweep as each point finishes or fails; the latest line
for a point name wins (a point re-run after a failure). The row's keys are the sweep/scaling
contract's (docs/scaling.md lists the ones the analysis reads). `select` turns rows into isoFLOP
curves: done rows with a finite eval_loss and a FLOPs budget, grouped by (seq_len, family,
budget), one point per model size: the row with the lowest eval_loss over its learning rates.
Failed rows, diverged rows (done without a finite eval_loss), rows without a budget and rows short
of their budget (a whole step of FLOPs left unspent: max_steps or a time limit stopped them first,
so they are not on their budget's curve) are left out and counted.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError, reason

SIZE_KEYS = ("non_embedding_params", "params")
STATUSES = ("done", "failed")
_NUMBER = (int, float)


def _is_number(value, integer: bool = False) -> bool:
    kinds = int if integer else _NUMBER
    return isinstance(value, kinds) and not isinstance(value, bool)


def row_problem(row) -> str | None:
    """What is wrong with one row (None when nothing): the keys a done row needs, with their types."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if not isinstance(row.get("point"), str):
        return "key 'point' must be a string"
    if row.get("status") not in STATUSES:
        return f"key 'status' must be one of {', '.join(STATUSES)}"
    if row["status"] == "failed":
        return None
    if not isinstance(row.get("family"), str):
        return "key 'family' must be a string"
    for key in ("seq_len", *SIZE_KEYS):
        if not _is_number(row.get(key), integer=True) or row[key] <= 0:
            return f"key {key!r} must be a positive integer"
    for key in ("budget_flops", "eval_loss", "learning_rate", "flops"):
        if row.get(key) is not None and not _is_number(row[key]):
            return f"key {key!r} must be a number or null"
    if row.get("eval_loss") is not None and row["eval_loss"] <= 0:  # NaN passes: a diverged run, left out
        return "key 'eval_loss' must be positive (a cross-entropy)"
    return None


def read_results(path: str | Path) -> list[dict]:
    """The rows of a results.jsonl, the latest per point; one line naming the file (and line) when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: not found; expected a sweep's results.jsonl (masked-mixers sweep writes it)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read ({reason(err)})") from None
    latest: dict[str, dict] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise UserError(f"{path}:{number}: not JSON ({reason(err)})") from None
        problem = row_problem(row)
        if problem:
            raise UserError(f"{path}:{number}: {problem}")
        latest.pop(row["point"], None)
        latest[row["point"]] = row
    if not latest:
        raise UserError(f"{path}: no rows; no sweep point has finished yet")
    return list(latest.values())


@dataclass
class SizePoint:
    """One model size on an isoFLOP curve: its best-learning-rate row."""

    size: int
    loss: float
    row: dict
    candidates: int  # learning rates tried at this size


@dataclass
class Selection:
    """Isoflop curves by (seq_len, family, budget), and what was left out."""

    curves: dict[tuple[int, str, float], list[SizePoint]] = field(default_factory=dict)
    excluded: dict[str, int] = field(
        default_factory=lambda: {"failed": 0, "diverged": 0, "unbudgeted": 0, "short_of_budget": 0}
    )
    rows: int = 0


def _short_of_budget(row: dict) -> bool:
    """Stopped with at least one whole step of its FLOPs budget unspent (max_steps or a time limit came first)."""
    steps, spent = row.get("steps"), row.get("flops")
    if not _is_number(steps, integer=True) or steps <= 0 or spent is None:
        return False
    return spent * (steps + 1) / steps < row["budget_flops"] * (1 - 1e-9)


def _exclusion(row: dict) -> str | None:
    if row["status"] == "failed":
        return "failed"
    if row.get("eval_loss") is None or not math.isfinite(row["eval_loss"]):
        return "diverged"
    if row.get("budget_flops") is None or row["budget_flops"] <= 0:
        return "unbudgeted"
    if _short_of_budget(row):
        return "short_of_budget"
    return None


def select(rows: list[dict], size: str = "non_embedding_params") -> Selection:
    """Group done rows into isoFLOP curves, each size at its best learning rate (module docstring)."""
    if size not in SIZE_KEYS:
        raise UserError(f"model size {size!r}: expected one of {', '.join(SIZE_KEYS)}")
    selection = Selection(rows=len(rows))
    tried: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        problem = row_problem(row)
        if problem:
            raise UserError(f"results row {row.get('point') if isinstance(row, dict) else row!r}: {problem}")
        excluded = _exclusion(row)
        if excluded:
            selection.excluded[excluded] += 1
            continue
        budget = float(f"{row['budget_flops']:.6g}")  # one budget, however the float was rounded on its way
        tried[(row["seq_len"], row["family"], budget, row[size])].append(row)
    for (seq_len, family, budget, n), candidates in sorted(tried.items()):
        best = min(candidates, key=lambda r: r["eval_loss"])
        point = SizePoint(n, float(best["eval_loss"]), best, len(candidates))
        selection.curves.setdefault((seq_len, family, budget), []).append(point)
    return selection


__all__ = ["SIZE_KEYS", "Selection", "SizePoint", "read_results", "row_problem", "select"]
