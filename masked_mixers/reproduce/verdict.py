"""Whether a measured difference agrees with the paper's claim: agrees, disagrees, inconclusive.

Every check compares two sides (usually two families trained with the same seeds on the same
tokens) on one number, per seed. The rule, stated in every scorecard:

- per seed i the paired gap g_i = b_i - a_i (a_i - b_i where higher is better): > 0 means a did
  better on that seed;
- a 95% confidence interval for the mean gap, Student's t on the paired gaps:
  mean +- t(0.975, n - 1) * sd / sqrt(n);
- with fewer than MIN_SEEDS (3) seeds: "inconclusive: too few seeds", whatever the gaps;
- a claim that a is better (by at least `effect`, a fraction of b's mean, for a size claim such
  as "far better", stated in the claim's words): agrees when the whole interval lies above that
  threshold, disagrees when it lies below it, otherwise inconclusive. With `effect` 0, identical
  sides give a decisive verdict 5% of the time (2.5% each way);
- a parity claim ("about as good as b, or better"; `tolerance` > 0) is an equivalence test against
  the band the paper states: a at most `tolerance` x b's mean worse than b. Agrees when the
  interval lies inside the band, disagrees when it lies wholly outside it, otherwise inconclusive.

A missing or non-finite value (a run that failed or diverged, masked_mixers/training/divergence.py) makes
the check inconclusive.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..core.stats import interval, t_quantile

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"
MIN_SEEDS = 3
FAR = 0.10  # a size claim's "far better": better by at least 10% of the other side's mean, on the whole interval


@dataclass
class Check:
    """One claim tested: the claim, the paper's numbers, ours, and the verdict with its reason.

    gaps: the per-seed paired gaps (> 0: the first side better), n their count, interval the 95%
    confidence interval of their mean ([low, high]; None with fewer than two seeds or for a yes/no check).
    """

    claim: str
    published: str
    measured: dict[str, list[float | None]]
    verdict: str
    reason: str
    variant: bool = False  # a named variant of the protocol: reported, not counted in the finding's verdict
    extra: dict = field(default_factory=dict)
    gaps: list[float] = field(default_factory=list)
    n: int = 0
    interval: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _missing(measured: dict[str, list]) -> str | None:
    for name, values in measured.items():
        if not values or any(v is None or not math.isfinite(v) for v in values):
            return f"no finite value for {name} (a run failed or diverged)"
    return None


def _decide(low: float, high: float, threshold: float, parity: bool) -> tuple[str, str]:
    """(verdict, what it means) of an interval against the claim's threshold (the band's edge for parity)."""
    inside, outside = (
        ("inside the band", "outside the band") if parity else (f"above {threshold:+.4g}", f"below {threshold:+.4g}")
    )
    if low > threshold:
        return AGREES, f"interval {inside}"
    if high < threshold:
        return DISAGREES, f"interval {outside}"
    return INCONCLUSIVE, f"interval straddles {threshold:+.4g}"


def better(
    claim: str,
    published: str,
    name_a: str,
    a: Sequence[float],
    name_b: str,
    b: Sequence[float],
    lower_is_better: bool = True,
    tolerance: float = 0.0,
    variant: bool = False,
    effect: float = 0.0,
) -> Check:
    """The claim "a is better than b" (by at least `effect` x b's mean), or with `tolerance` > 0
    "a is about as good as b, or better".

    a[i] and b[i] come from the same seed i. `tolerance` is the parity band and `effect` the size a
    size claim requires, both as fractions of b's mean; the module docstring gives the rule.
    """
    if tolerance < 0 or effect < 0 or (tolerance and effect):
        raise ValueError(
            f"tolerance and effect are fractions >= 0, at most one of them set; got {tolerance} and {effect}"
        )
    measured = {name_a: list(a), name_b: list(b)}
    missing = _missing(measured) or (None if len(a) == len(b) else "unequal numbers of seeds")
    if missing:
        return Check(claim, published, measured, INCONCLUSIVE, missing, variant)
    sign = 1.0 if lower_is_better else -1.0
    gaps = [sign * (y - x) for x, y in zip(a, b)]  # > 0: a better on that seed
    scale = abs(statistics.fmean(b)) or 1.0
    threshold = -tolerance * scale if tolerance else effect * scale
    wanted = (
        f"parity band: {name_a} at most {tolerance:.0%} worse"
        if tolerance
        else f"{name_a} better by more than {effect:.0%}"
        if effect
        else f"{name_a} better"
    )
    detail = f"mean gap {statistics.fmean(gaps):+.4g} ({wanted}: gap > {threshold:+.4g}; n {len(gaps)}"
    if len(gaps) < MIN_SEEDS:
        return Check(
            claim,
            published,
            measured,
            INCONCLUSIVE,
            f"too few seeds: {detail}, at least {MIN_SEEDS} needed)",
            variant,
            gaps=gaps,
            n=len(gaps),
        )
    low, high = interval(gaps)
    verdict, meaning = _decide(low, high, threshold, bool(tolerance))
    reason = f"{detail}, 95% CI [{low:+.4g}, {high:+.4g}]: {meaning})"
    return Check(claim, published, measured, verdict, reason, variant, gaps=gaps, n=len(gaps), interval=[low, high])


def holds(
    claim: str, published: str, measured: dict[str, list], ok: bool | None, reason: str, variant: bool = False
) -> Check:
    """A yes/no claim (a run diverged, logits match): agrees when `ok`, disagrees when not; None or missing
    values: inconclusive."""
    missing = _missing({k: v for k, v in measured.items() if v is not None})
    if missing:
        return Check(claim, published, measured, INCONCLUSIVE, missing, variant)
    verdict = INCONCLUSIVE if ok is None else AGREES if ok else DISAGREES
    return Check(
        claim, published, measured, verdict, reason, variant, n=max((len(v) for v in measured.values() if v), default=0)
    )


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


__all__ = [
    "AGREES",
    "DISAGREES",
    "FAR",
    "INCONCLUSIVE",
    "MIN_SEEDS",
    "Check",
    "better",
    "holds",
    "interval",
    "overall",
    "t_quantile",
]
