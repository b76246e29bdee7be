"""The numerical pieces of the isoFLOP analysis: numpy only (scipy is not a dependency of this package).

- `isoflop_optimum`: at one compute budget, loss against model size N is fitted by a parabola in
  ln N; its vertex is the compute-optimal size and loss. Fewer than 3 distinct sizes, a parabola
  opening downward or a vertex outside the measured sizes are not fitted: the best measured point
  stands in, flagged as a bound (the true optimum's loss is at most that).
- `fit_power_law`: the optimal losses against the budgets, L*(C) = a * C^(-b) (+ E). Least squares
  in ln L (each budget's loss counts by its relative error). Without E it is a line in log-log;
  with E, E is profiled on a grid in [0, min L*) refined three times, a line fitted for each.
- `choose_irreducible`: the rule for E. E is fitted only where the data support it: at least
  MIN_BUDGETS_FOR_E budgets, and a lower leave-one-out error (each budget predicted from the others,
  root mean square in ln L) than the plain power law's. A tie keeps the plain law (fewer parameters).
- `crossings`: the compute values where two fitted laws give the same loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VERTEX = "vertex"
TOO_FEW_SIZES = "too few sizes"
OPENS_DOWNWARD = "opens downward"
EDGE = "edge"
NOTES = {
    VERTEX: "vertex of the parabola in ln N",
    TOO_FEW_SIZES: "fewer than 3 sizes: not fitted; the best measured point, a bound",
    OPENS_DOWNWARD: "parabola opens downward: not fitted; the best measured point, a bound",
    EDGE: "vertex outside measured sizes: the budget's optimum is at the edge; the best measured point, a bound",
}
MIN_SIZES = 3
MIN_BUDGETS_FOR_E = 4
_E_GRID = 201  # first E grid over [0, min L*); each refinement spans the two neighbours of the best value
_E_REFINE = 41


@dataclass(frozen=True)
class Optimum:
    """The compute-optimal size and loss at one budget, and how they were found (a NOTES key)."""

    size: float
    loss: float
    status: str
    coefficients: tuple[float, float, float] | None  # c2, c1, c0 of loss = c2 x^2 + c1 x + c0, x = ln N

    @property
    def bound(self) -> bool:
        return self.status != VERTEX


def isoflop_optimum(sizes, losses, weights=None) -> Optimum:
    """The optimum of one isoFLOP curve; `weights`: how often each point counts (a bootstrap's duplicates)."""
    sizes, losses = np.asarray(sizes, dtype=float), np.asarray(losses, dtype=float)
    weights = np.ones_like(losses) if weights is None else np.asarray(weights, dtype=float)
    best = int(np.argmin(losses))
    x = np.log(sizes)
    if len(np.unique(x)) < MIN_SIZES:
        return Optimum(float(sizes[best]), float(losses[best]), TOO_FEW_SIZES, None)
    c2, c1, c0 = (float(c) for c in np.polyfit(x, losses, 2, w=np.sqrt(weights)))
    if c2 <= 0:
        return Optimum(float(sizes[best]), float(losses[best]), OPENS_DOWNWARD, (c2, c1, c0))
    vertex = -c1 / (2 * c2)
    if not x.min() <= vertex <= x.max():
        return Optimum(float(sizes[best]), float(losses[best]), EDGE, (c2, c1, c0))
    return Optimum(float(np.exp(vertex)), c0 - c1 * c1 / (4 * c2), VERTEX, (c2, c1, c0))


@dataclass(frozen=True)
class PowerLaw:
    """L*(C) = E + a * C^(-b); E is None for the plain power law."""

    a: float
    b: float
    E: float | None

    def __call__(self, flops):
        return (self.E or 0.0) + self.a * np.asarray(flops, dtype=float) ** (-self.b)


def _lines(x: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares lines y = intercept + slope * x for each row of ys (G, n): (slopes (G,), intercepts (G,))."""
    dx = x - x.mean()
    slopes = (ys - ys.mean(axis=1, keepdims=True)) @ dx / (dx @ dx)
    return slopes, ys.mean(axis=1) - slopes * x.mean()


def _profile(x: np.ndarray, losses: np.ndarray, grid: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """For each E of `grid`: the line of ln(L - E) on ln C; the index of the E with the least ln L error."""
    slopes, intercepts = _lines(x, np.log(losses[None, :] - grid[:, None]))  # (G, n) -> (G,)
    fitted = np.log(grid[:, None] + np.exp(intercepts[:, None] + slopes[:, None] * x[None, :]))  # (G, n)
    rss = ((fitted - np.log(losses)[None, :]) ** 2).sum(axis=1)
    return int(np.argmin(rss)), slopes, intercepts


def fit_power_law(flops, losses, irreducible: bool) -> PowerLaw:
    """Least squares in ln L of L = a * C^(-b) (+ E with 0 <= E < min L); needs 2 budgets (3 with E)."""
    x, losses = np.log(np.asarray(flops, dtype=float)), np.asarray(losses, dtype=float)
    if not irreducible:
        slopes, intercepts = _lines(x, np.log(losses)[None, :])
        return PowerLaw(float(np.exp(intercepts[0])), float(-slopes[0]), None)
    grid = np.linspace(0.0, losses.min(), _E_GRID)[:-1]
    for _ in range(3):
        k, slopes, intercepts = _profile(x, losses, grid)
        best = PowerLaw(float(np.exp(intercepts[k])), float(-slopes[k]), float(grid[k]))
        low, high = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        grid = np.linspace(low, high, _E_REFINE)
    return best


def _leave_one_out(x: np.ndarray, losses: np.ndarray, irreducible: bool) -> float:
    """Root mean square error in ln L of each budget predicted by the law fitted on the others."""
    errors = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        law = fit_power_law(np.exp(x[keep]), losses[keep], irreducible)
        errors.append(np.log(law(np.exp(x[i]))) - np.log(losses[i]))
    return float(np.sqrt(np.mean(np.square(errors))))


def choose_irreducible(flops, losses) -> tuple[bool, str]:
    """Whether to fit E (the module docstring's rule) and the reason, in words."""
    flops, losses = np.asarray(flops, dtype=float), np.asarray(losses, dtype=float)
    if len(flops) < MIN_BUDGETS_FOR_E:
        return False, f"no E: {len(flops)} budgets (E needs at least {MIN_BUDGETS_FOR_E})"
    x = np.log(flops)
    plain, with_e = _leave_one_out(x, losses, False), _leave_one_out(x, losses, True)
    verdict = "E fitted" if with_e < plain else "no E"
    relation = "<" if with_e < plain else ">="
    return with_e < plain, f"{verdict}: leave-one-out rms ln-error with E {with_e:.4f} {relation} without {plain:.4f}"


def crossings(first: PowerLaw, second: PowerLaw, low: float, high: float, points: int = 2001) -> list[float]:
    """Compute values in [low, high] where the two laws give the same loss, ascending (bisection in ln C)."""
    grid = np.geomspace(low, high, points)
    gap = np.log(first(grid)) - np.log(second(grid))
    found = []
    for i in np.flatnonzero(np.sign(gap[:-1]) * np.sign(gap[1:]) < 0):
        lo, hi = np.log(grid[i]), np.log(grid[i + 1])
        for _ in range(60):
            mid = (lo + hi) / 2
            same_side = np.sign(np.log(first(np.exp(mid))) - np.log(second(np.exp(mid)))) == np.sign(gap[i])
            lo, hi = (mid, hi) if same_side else (lo, mid)
        found.append(float(np.exp((lo + hi) / 2)))
    return found


__all__ = [
    "EDGE",
    "NOTES",
    "OPENS_DOWNWARD",
    "TOO_FEW_SIZES",
    "VERTEX",
    "Optimum",
    "PowerLaw",
    "choose_irreducible",
    "crossings",
    "fit_power_law",
    "isoflop_optimum",
]
