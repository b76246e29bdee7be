"""The sweep's table: results.jsonl (one row per finished or failed point, the latest line of a point wins)
and the learning rates select_learning_rate chose (learning_rates.json).

Rows are appended atomically: the file is rewritten whole through a temporary file and a rename
(core/files.py), so a kill leaves the old table or the new one, never a torn line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..core.errors import UserError
from ..core.files import atomic_write_json, atomic_write_text

RESULTS = "results.jsonl"
LEARNING_RATES = "learning_rates.json"


def read_rows(sweep_dir: str | Path) -> list[dict]:
    """Every row of SWEEP_DIR/results.jsonl, oldest first ([] when there is none)."""
    path = Path(sweep_dir) / RESULTS
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not isinstance(row.get("point"), str):
            raise UserError(f"{path}:{number}: not a results row (a JSON object with a 'point')")
        rows.append(row)
    return rows


def latest(rows: list[dict]) -> dict[str, dict]:
    """point name -> its latest row."""
    return {row["point"]: row for row in rows}


def append_row(sweep_dir: str | Path, row: dict) -> None:
    """Add `row` to results.jsonl atomically."""
    path = Path(sweep_dir) / RESULTS
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(path, old + json.dumps(row) + "\n")


def best_rate(rows: list[dict]) -> float | None:
    """The learning rate of the finished row with the lowest held-out loss (ties: the smaller rate); None when
    no row finished with a finite loss (a diverged run is no candidate)."""
    finished = [
        r
        for r in rows
        if r.get("status") == "done" and r.get("eval_loss") is not None and math.isfinite(r["eval_loss"])
    ]
    if not finished:
        return None
    return min(finished, key=lambda r: (r["eval_loss"], r["learning_rate"]))["learning_rate"]


def write_learning_rates(sweep_dir: str | Path, choices: list[dict]) -> None:
    """learning_rates.json: per size (the overrides without rate and budget) the rates tried, their held-out
    losses and the chosen rate."""
    atomic_write_json(Path(sweep_dir) / LEARNING_RATES, choices)


__all__ = ["LEARNING_RATES", "RESULTS", "append_row", "best_rate", "latest", "read_rows", "write_learning_rates"]
