"""Eval loss curves of every model on one axis: against wall-clock time and against tokens seen.

The loss is the task's own (tasks.py): next-token loss for language models, reconstruction loss
for autoencoders; only the axis label differs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from ..core.files import save_figure  # noqa: E402
from ..training.tasks import AUTOENCODE, CAUSAL_LM  # noqa: E402

PLOTS = {
    "eval_loss_vs_time.png": ("elapsed_s", "wall-clock training time (s)"),
    "eval_loss_vs_tokens.png": ("tokens_seen", "training tokens seen"),
}
LOSS_LABELS = {CAUSAL_LM: "eval next-token loss (nats/token)", AUTOENCODE: "eval reconstruction loss (nats/token)"}


def eval_curve(history: list[dict], final: dict | None = None) -> list[dict]:
    """The eval events of a run's metrics history, plus the final evaluation when it is later."""
    points = [
        {"step": r["step"], "elapsed_s": r["elapsed_s"], "tokens_seen": r["tokens_seen"], "eval_loss": r["eval_loss"]}
        for r in history
        if "eval_loss" in r
    ]
    if final and (not points or final["step"] > points[-1]["step"]):
        points.append(final)
    return points


def plot_curves(
    curves: dict[str, list[dict]], output_dir: Path, task: str = CAUSAL_LM, ylabel: str | None = None
) -> list[Path]:
    """Write the two PNGs (see PLOTS); curves: model label -> eval_curve points; ylabel overrides the task's."""
    paths = []
    for name, (key, xlabel) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, points in curves.items():
            ax.plot([p[key] for p in points], [p["eval_loss"] for p in points], marker="o", markersize=3, label=label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel or LOSS_LABELS[task])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        save_figure(fig, output_dir / name, bbox_inches="tight")
        paths.append(output_dir / name)
    return paths
