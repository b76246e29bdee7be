"""scaling.png: one row of two panels per context length, drawn from the analysis dict alone.

Left: the isoFLOP curves, loss against model size N (log axis), one colour per budget, one marker
per family, each fitted parabola over its measured sizes; a star at each vertex, a hollow marker at
each bound. Right: the frontier, optimal loss against compute (log-log), per family the optima
(hollow: bounds) and the fitted law, the holdout prediction (x), and the crossover with its 95%
interval (shaded) or, when extrapolated, a dotted line.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FormatStrFormatter  # noqa: E402

from ..core.files import save_figure  # noqa: E402

MARKERS = "osd^vP*X"
LINESTYLES = ("-", "--", ":", "-.") * 2  # one per family, as MARKERS
SIZE_LABELS = {"non_embedding_params": "model size N (non-embedding parameters)", "params": "model size N (parameters)"}


def _isoflop_panel(ax, families: dict) -> None:
    budgets = sorted({b["budget_flops"] for fam in families.values() for b in fam["budgets"]})
    colours = dict(zip(budgets, plt.cm.viridis(np.linspace(0, 0.9, max(len(budgets), 1)))))
    for marker, style, (name, fam) in zip(MARKERS, LINESTYLES, families.items()):
        for b in fam["budgets"]:
            colour = colours[b["budget_flops"]]
            sizes = np.array([r["size"] for r in b["runs"]], dtype=float)
            ax.scatter(sizes, [r["eval_loss"] for r in b["runs"]], color=colour, marker=marker, s=18)
            if b["parabola"] and len(sizes) > 1:
                x = np.linspace(np.log(sizes.min()), np.log(sizes.max()), 60)
                ax.plot(np.exp(x), np.polyval(b["parabola"], x), color=colour, lw=1, ls=style)
            face = "none" if b["bound"] else colour
            ax.scatter([b["optimal_size"]], [b["optimal_loss"]], marker="*", s=90, facecolors=face, edgecolors=colour)
        ax.scatter([], [], marker=marker, color="grey", label=name)
    for budget, colour in colours.items():
        ax.plot([], [], color=colour, label=f"{budget:.2g} FLOPs")
    ax.set_xscale("log")
    ax.set_ylabel("eval loss (nats/token)")
    ax.legend(fontsize=6, ncol=2)


def _frontier_panel(ax, families: dict, crossovers: list[dict]) -> None:
    for marker, (name, fam) in zip(MARKERS, families.items()):
        c = np.array([p["budget_flops"] for p in fam["points"]])
        loss = np.array([p["loss"] for p in fam["points"]])
        bound = np.array([p["bound"] for p in fam["points"]], dtype=bool)
        (line,) = ax.plot([], [])
        colour = line.get_color()
        ax.scatter(c[~bound], loss[~bound], color=colour, marker=marker, label=f"{name} optima")
        ax.scatter(c[bound], loss[bound], facecolors="none", edgecolors=colour, marker=marker)
        if fam["exponent"] is not None:
            grid = np.geomspace(c.min() / 3, c.max() * 3, 100)
            law = (fam["E"] or 0.0) + fam["a"] * grid ** (-fam["exponent"])
            ax.plot(grid, law, color=colour, lw=1, label=f"{name}: b = {fam['exponent']:.3f}")
        holdout = fam["holdout"]
        if holdout["status"] == "checked":
            ax.scatter([holdout["budget_flops"]], [holdout["predicted_loss"]], color=colour, marker="x", s=50)
    for entry in crossovers:
        found, extra = entry["crossover"], entry["extrapolated"]
        if isinstance(found, dict):
            ax.axvline(found["flops"], color="k", lw=0.8, label="crossover")
            if found["ci"]:
                ax.axvspan(*found["ci"], color="k", alpha=0.08)
        elif extra:
            ax.axvline(extra["flops"], color="k", lw=0.8, ls=":", label="crossover (extrapolated)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis_formatter in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis_formatter(FormatStrFormatter("%.3g"))  # plain loss values on the log axis
    ax.set_xlabel("training compute C (analytic FLOPs)")
    ax.set_ylabel("optimal eval loss L*(C)")
    ax.legend(fontsize=6)


def plot_scaling(analysis: dict, path: str | Path) -> None:
    contexts = analysis["contexts"]
    fig, axes = plt.subplots(max(len(contexts), 1), 2, figsize=(11, 4.2 * max(len(contexts), 1)), squeeze=False)
    for (left, right), context in zip(axes, contexts):
        _isoflop_panel(left, context["families"])
        left.set_xlabel(SIZE_LABELS[analysis["size"]])
        left.set_title(f"L {context['seq_len']}: isoFLOP curves (star: optimum; hollow: a bound)", fontsize=9)
        _frontier_panel(right, context["families"], context["crossovers"])
        right.set_title(f"L {context['seq_len']}: compute frontier (x: holdout prediction)", fontsize=9)
    if not contexts:
        axes[0][0].text(0.5, 0.5, "no usable rows", ha="center", transform=axes[0][0].transAxes)
    fig.tight_layout()
    save_figure(fig, path)


__all__ = ["plot_scaling"]
