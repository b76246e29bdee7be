"""`analyse(rows)`: per context length and family, the isoFLOP optima, the compute frontier, its bootstrap
interval and holdout check, and the crossover between families. Pure: rows in, a JSON-ready dict out.

Per (seq_len, family): each budget's isoFLOP curve (results.select: each size at its best learning
rate) gives an optimum (fit.isoflop_optimum: a parabola vertex, or the best measured point flagged
as a bound); the optima give the frontier L*(C) = a * C^(-b) (+ E by fit.choose_irreducible's
rule), fitted on vertices and bounds alike (each point says which it is). C is the budget
(train.max_flops), the analytic count of training/budget.py; each run's spent FLOPs are listed.

Bootstrap (`resamples`, fixed `seed`): within each budget the size points are drawn with
replacement, every optimum and the frontier refitted (in the form the full data chose); the 95%
interval is the 2.5-97.5 percentile range. Crossovers use the same resamples of the two families,
paired by index, each resample's crossing taken nearest to the full-data one.

Holdout: the frontier refitted (E rule included) on all budgets but the largest predicts the
largest budget's optimal loss; the error is measured against that budget's optimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .fit import NOTES, Optimum, PowerLaw, choose_irreducible, crossings, fit_power_law, isoflop_optimum
from .results import SizePoint, select

MIN_DESIGN_BUDGETS, MIN_DESIGN_SIZES = 3, 4
EXTRAPOLATE = 1e3  # crossings are searched this factor beyond the measured budgets (reported as extrapolated)
NO_CROSSOVER = "none in measured range"


@dataclass
class FamilyFit:
    """One family at one context length: its curves, their optima and the frontier with its resamples."""

    budgets: list[float]
    curves: list[list[SizePoint]]
    optima: list[Optimum]
    law: PowerLaw | None
    rule: str
    resampled: list[PowerLaw | None]


def _frontier(budgets: list[float], optima: list[Optimum], irreducible: bool | None = None):
    """(law, rule) of the optima; law None with fewer than 2 budgets. irreducible None: chosen by the rule."""
    if len(budgets) < 2:
        return None, f"not fitted: {len(budgets)} budget (a frontier needs at least 2)"
    losses = [o.loss for o in optima]
    rule = "E as chosen on all budgets"
    if irreducible is None:
        irreducible, rule = choose_irreducible(budgets, losses)
    return fit_power_law(budgets, losses, irreducible), rule


def _resample(curves: list[list[SizePoint]], budgets: list[float], irreducible: bool, rng) -> PowerLaw | None:
    optima = []
    for curve in curves:
        counts = np.bincount(rng.integers(0, len(curve), len(curve)), minlength=len(curve))
        kept = np.flatnonzero(counts)
        optima.append(isoflop_optimum([curve[i].size for i in kept], [curve[i].loss for i in kept], counts[kept]))
    return _frontier(budgets, optima, irreducible)[0]


def fit_family(curves: dict[float, list[SizePoint]], resamples: int, rng) -> FamilyFit:
    budgets = sorted(curves)
    ordered = [curves[b] for b in budgets]
    optima = [isoflop_optimum([p.size for p in c], [p.loss for p in c]) for c in ordered]
    law, rule = _frontier(budgets, optima)
    resampled = [] if law is None else [_resample(ordered, budgets, law.E is not None, rng) for _ in range(resamples)]
    return FamilyFit(budgets, ordered, optima, law, rule, resampled)


def _interval(values) -> list[float] | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values) >= 2 else None


def _holdout(fit: FamilyFit) -> dict:
    if len(fit.budgets) < 3:
        return {"status": f"not checked: {len(fit.budgets)} budgets (the holdout needs at least 3)"}
    law, rule = _frontier(fit.budgets[:-1], fit.optima[:-1])
    measured = fit.optima[-1]
    predicted = float(law(fit.budgets[-1]))
    return {
        "status": "checked",
        "budget_flops": fit.budgets[-1],
        "predicted_loss": predicted,
        "measured_loss": measured.loss,
        "measured_is_bound": measured.bound,
        "abs_error": abs(predicted - measured.loss),
        "rel_error": abs(predicted - measured.loss) / measured.loss,
        "exponent": law.b,
        "E": law.E,
        "irreducible_rule": rule,
    }


def _budget_entry(budget: float, curve: list[SizePoint], optimum: Optimum) -> dict:
    runs = [
        {
            "point": p.row["point"],
            "size": p.size,
            "eval_loss": p.loss,
            "learning_rate": p.row.get("learning_rate"),
            "flops": p.row.get("flops"),
            "learning_rates_tried": p.candidates,
        }
        for p in curve
    ]
    return {
        "budget_flops": budget,
        "status": optimum.status,
        "note": NOTES[optimum.status],
        "bound": optimum.bound,
        "optimal_size": optimum.size,
        "optimal_loss": optimum.loss,
        "parabola": list(optimum.coefficients) if optimum.coefficients else None,
        "runs": runs,
    }


def _design(fit: FamilyFit) -> dict:
    sizes = [len(c) for c in fit.curves]
    meets = len(sizes) >= MIN_DESIGN_BUDGETS and min(sizes, default=0) >= MIN_DESIGN_SIZES
    return {
        "budgets": len(sizes),
        "sizes_per_budget": sizes,
        "learning_rates_per_size": sorted({p.candidates for c in fit.curves for p in c}),
        "meets_isoflop_design": meets,
    }


def family_result(fit: FamilyFit) -> dict:
    """The JSON entry of one family: design, per-budget optima, frontier with its interval, holdout."""
    law = fit.law
    exponents = [r.b for r in fit.resampled if r is not None]
    pairs = list(zip(fit.budgets, fit.optima))
    return {
        "design": _design(fit),
        "budgets": [_budget_entry(b, c, o) for b, c, o in zip(fit.budgets, fit.curves, fit.optima)],
        "status": "fitted" if law else fit.rule,
        "exponent": law.b if law else None,
        "exponent_ci": _interval(exponents) if law else None,
        "a": law.a if law else None,
        "E": law.E if law else None,
        "irreducible_rule": fit.rule,
        "points": [{"budget_flops": b, "loss": o.loss, "size": o.size, "bound": o.bound} for b, o in pairs],
        "bootstrap_fits": len(exponents),
        "holdout": _holdout(fit),
    }


def _nearest(candidates: list[float], target: float) -> float | None:
    return min(candidates, key=lambda c: abs(np.log(c / target))) if candidates else None


def crossover(names: tuple[str, str], first: FamilyFit, second: FamilyFit) -> dict:
    """Where the two fitted frontiers cross: in the budgets both measured, or (marked) by extrapolation."""
    entry = {"families": list(names), "crossover": NO_CROSSOVER, "extrapolated": None, "share_in_range": None}
    if first.law is None or second.law is None:
        entry["crossover"] = "not computed: a family has no fitted frontier"
        return entry
    low, high = max(first.budgets[0], second.budgets[0]), min(first.budgets[-1], second.budgets[-1])
    if low > high:
        entry["crossover"] = "not computed: the two families measured no common range of budgets"
        return entry
    wide = (low / EXTRAPOLATE, high * EXTRAPOLATE)
    found = crossings(first.law, second.law, *wide)
    inside = [c for c in found if low <= c <= high]
    target = inside[0] if inside else _nearest(found, np.sqrt(low * high))
    pairs = [(p, q) for p, q in zip(first.resampled, second.resampled) if p is not None and q is not None]
    samples = [crossings(p, q, *wide) for p, q in pairs]
    entry["share_in_range"] = sum(any(low <= c <= high for c in s) for s in samples) / len(samples) if pairs else None
    if target is None:
        return entry
    result = {
        "flops": target,
        "ci": _interval([_nearest(s, target) for s in samples]),
        "lower_below": names[0] if first.law(target / 2) < second.law(target / 2) else names[1],
        "crossings_found": len(inside) if inside else len(found),
    }
    if inside:
        entry["crossover"] = result
    else:
        entry["extrapolated"] = {**result, "note": f"extrapolated beyond the measured budgets [{low:.3g}, {high:.3g}]"}
    return entry


def leaders(fits: dict[str, FamilyFit]) -> list[dict]:
    """At each measured budget, the family with the lowest optimal loss and its margin over the next."""
    by_budget: dict[float, dict[str, Optimum]] = {}
    for name, fit in fits.items():
        for budget, optimum in zip(fit.budgets, fit.optima):
            by_budget.setdefault(budget, {})[name] = optimum
    rows = []
    for budget, optima in sorted(by_budget.items()):
        ranked = sorted(optima.items(), key=lambda item: item[1].loss)
        margin = ranked[1][1].loss - ranked[0][1].loss if len(ranked) > 1 else None
        rows.append({"budget_flops": budget, "ahead": ranked[0][0], "margin": margin, "families": len(ranked)})
    return rows


def _summary(seq_len: int, lead: list[dict]) -> str:
    parts = [
        f"{r['budget_flops']:.3g}: "
        + (f"{r['ahead']} ahead by {r['margin']:.3f}" if r["margin"] is not None else f"only {r['ahead']} measured")
        for r in lead
    ]
    return f"L {seq_len}, lowest optimal loss per budget (FLOPs): " + "; ".join(parts)


def analyse(rows: list[dict], *, size: str = "non_embedding_params", resamples: int = 1000, seed: int = 0) -> dict:
    """The whole analysis of a sweep's rows (module docstring); `size`: the row key used as model size N."""
    selection = select(rows, size)
    contexts = []
    for seq_len in sorted({key[0] for key in selection.curves}):
        names = sorted({key[1] for key in selection.curves if key[0] == seq_len})
        fits = {}
        for index, name in enumerate(names):
            curves = {b: pts for (length, fam, b), pts in selection.curves.items() if (length, fam) == (seq_len, name)}
            fits[name] = fit_family(curves, resamples, np.random.default_rng([seed, seq_len, index]))
        lead = leaders(fits)
        contexts.append(
            {
                "seq_len": seq_len,
                "families": {name: family_result(fit) for name, fit in fits.items()},
                "crossovers": [crossover(pair, fits[pair[0]], fits[pair[1]]) for pair in combinations(names, 2)],
                "leaders": lead,
                "summary": _summary(seq_len, lead),
            }
        )
    return {
        "size": size,
        "flops": "analytic training FLOPs per budget (train.max_flops; training/budget.py, the bench count)",
        "bootstrap": {"resamples": resamples, "seed": seed, "confidence": 0.95},
        "rows": selection.rows,
        "excluded": selection.excluded,
        "contexts": contexts,
    }


__all__ = ["NO_CROSSOVER", "analyse", "crossover", "family_result", "fit_family", "leaders"]
