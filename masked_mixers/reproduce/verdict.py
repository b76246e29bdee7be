"""Whether a measured difference agrees with the paper's direction: agrees, disagrees, inconclusive.

Every check compares two sides (usually two families trained with the same seeds on the same
tokens) on one number, per seed. The rule, stated in every scorecard:

- the gap's sign must be the same for every seed, else "inconclusive: seeds disagree";
- with two or more seeds the mean gap must exceed the seed noise, the largest spread (max - min
  over seeds) of either side, else "inconclusive: gap within seed noise";
- with one seed there is no noise estimate: the direction decides, and the reason says so.

A check's `tolerance` (relative) makes it a parity claim ("about as efficient as"): a gap within
tolerance of the mean agrees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"


@dataclass
class Check:
    """One claim tested: the claim, the paper's numbers, ours, and the verdict with its reason."""

    claim: str
    published: str
    measured: dict[str, list[float | None]]
    verdict: str
    reason: str
    variant: bool = False  # a named variant of the protocol: reported, not counted in the finding's verdict
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _spread(values: Sequence[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else 0.0


def _missing(measured: dict[str, list]) -> str | None:
    for name, values in measured.items():
        if not values or any(v is None or not math.isfinite(v) for v in values):
            return f"no finite value for {name} (a run failed or diverged)"
    return None


def better(
    claim: str, published: str, name_a: str, a: Sequence[float], name_b: str, b: Sequence[float],
    lower_is_better: bool = True, tolerance: float = 0.0, variant: bool = False,
) -> Check:
    """The claim "a is better than b" (tolerance 0) or "a is about as good as b, or better" (tolerance > 0).

    a[i] and b[i] come from the same seed i.
    """
    measured = {name_a: list(a), name_b: list(b)}
    missing = _missing(measured)
    if missing or len(a) != len(b):
        return Check(claim, published, measured, INCONCLUSIVE, missing or "unequal numbers of seeds", variant)
    sign = 1.0 if lower_is_better else -1.0
    gaps = [sign * (y - x) for x, y in zip(a, b)]  # > 0: a better on that seed
    mean_gap = sum(gaps) / len(gaps)
    scale = abs(sum(a) + sum(b)) / (2 * len(a)) or 1.0
    allowed = tolerance * scale
    noise = max(_spread(a), _spread(b))
    leader = name_a if mean_gap > 0 else name_b if mean_gap < 0 else "neither"
    seeds = f"{len(gaps)} seed{'s' if len(gaps) > 1 else ''}" + (f", seed noise {noise:.3g}" if len(gaps) > 1 else ", no noise estimate")
    detail = f"mean gap {mean_gap:+.4g} ({leader} better; {seeds})"
    if tolerance and all(g >= -allowed for g in gaps):
        return Check(claim, published, measured, AGREES, f"{detail}; within the {tolerance:.0%} parity band or better on every seed", variant)
    if mean_gap == 0:
        return Check(claim, published, measured, INCONCLUSIVE, f"{detail}; no gap", variant)
    if len({g > 0 for g in gaps}) > 1:
        return Check(claim, published, measured, INCONCLUSIVE, f"{detail}; seeds disagree on the direction", variant)
    if len(gaps) > 1 and abs(mean_gap) <= noise:
        return Check(claim, published, measured, INCONCLUSIVE, f"{detail}; gap within seed noise", variant)
    return Check(claim, published, measured, AGREES if mean_gap > 0 else DISAGREES, detail, variant)


def holds(claim: str, published: str, measured: dict[str, list], ok: bool, reason: str, variant: bool = False) -> Check:
    """A yes/no claim (a run diverged, logits match): agrees when `ok`; missing values make it inconclusive."""
    missing = _missing({k: v for k, v in measured.items() if v is not None})
    if missing:
        return Check(claim, published, measured, INCONCLUSIVE, missing, variant)
    return Check(claim, published, measured, AGREES if ok else DISAGREES, reason, variant)


def overall(checks: Sequence[Check]) -> tuple[str, str]:
    """The finding's verdict from its protocol checks (variants are reported but not counted)."""
    counted = [c for c in checks if not c.variant]
    if not counted:
        return INCONCLUSIVE, "no check ran"
    verdicts = [c.verdict for c in counted]
    tally = ", ".join(f"{verdicts.count(v)} {v}" for v in (AGREES, DISAGREES, INCONCLUSIVE) if v in verdicts)
    if all(v == AGREES for v in verdicts):
        return AGREES, f"every check agrees ({tally})"
    if all(v == DISAGREES for v in verdicts):
        return DISAGREES, f"every check disagrees ({tally})"
    if AGREES in verdicts and DISAGREES in verdicts:
        return INCONCLUSIVE, f"checks split ({tally})"
    lead = DISAGREES if DISAGREES in verdicts else AGREES if AGREES in verdicts else INCONCLUSIVE
    if lead == INCONCLUSIVE:
        return INCONCLUSIVE, f"no check is decisive ({tally})"
    return INCONCLUSIVE, f"partly {lead}, the rest undecided ({tally})"


__all__ = ["AGREES", "DISAGREES", "INCONCLUSIVE", "Check", "better", "holds", "overall"]
