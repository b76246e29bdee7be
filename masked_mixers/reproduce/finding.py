"""What one finding of the paper is to `reproduce`, and what measuring it returns.

A finding module (f1_representation.py ... f7_linear.py) declares one `Finding`: the paper's
claim and published numbers (quoted from the findings list, docs/findings.md), the protocol it
runs at every scale in words, and `run(ctx) -> Measured`. The scorecard (scorecard.py) renders
these two objects and nothing else, so a new finding is one new module and one line in
findings.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .verdict import Check


@dataclass
class Measured:
    """A finding's result: its checks, the budget each run used, a headline number per side.

    headline: {"metric": name, "lower_is_better": bool, "values": {side: [per seed]}} for the plot.
    table: rows (dicts with the same keys) of everything measured, for the scorecard's table.
    artifacts: reports and plots this finding wrote, relative to the output directory.
    """

    checks: list[Check]
    budget: str
    headline: dict
    table: list[dict] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """One finding: the paper's side (claim, published numbers) and how it is measured here."""

    id: str
    title: str
    claim: str
    published: str  # markdown: the paper's numbers for this finding
    protocol: str  # markdown: what runs, at every scale
    run: Callable  # (Context) -> Measured
    seeded: bool = True  # compares families over the scale's seeds (else one run, and the scorecard says so)


def mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite and len(finite) == len(values) else None


__all__ = ["Finding", "Measured", "mean"]
