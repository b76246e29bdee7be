"""Scaling analysis of a sweep: isoFLOP optima, compute frontiers, crossovers, with bootstrap intervals.

`analyse(rows)` is pure (rows in, a JSON-ready dict out); `write_report(folder, analysis)` writes
scaling.json, scaling.md and scaling.png; `read_results(path)` reads a sweep's results.jsonl.
docs/scaling.md describes the method and what each number means.
"""

from .analysis import analyse
from .report import write_report
from .results import read_results

__all__ = ["analyse", "read_results", "write_report"]
