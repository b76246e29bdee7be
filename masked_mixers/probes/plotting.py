"""Figures for the probes, drawn headless (Agg) and written atomically (temporary file, then rename)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..core.files import save_figure  # noqa: E402


def plot_representation(report: dict, path: str | os.PathLike) -> None:
    """Three panels: the Hamming metric by block, per position at each model's deepest probed block, loss curves;
    one line per model and protocol."""
    fig, (by_block, by_position, curves) = plt.subplots(1, 3, figsize=(16, 4.5))
    protocols = [p["protocol"] for p in report["protocols"]]
    for entry in report["models"]:
        for protocol in protocols:
            results = [r for r in entry["results"] if r["protocol"] == protocol]
            if not results:
                continue
            label = entry["label"] if len(protocols) == 1 else f"{entry['label']}, {protocol}"
            line = by_block.plot(
                [r["block"] for r in results], [r["hamming"] for r in results], marker="o", label=label
            )[0]
            deepest = results[-1]
            curve = [float("nan") if v is None else v for v in deepest["per_position"]]
            by_position.plot(
                range(len(curve)), curve, color=line.get_color(), label=f"{label} (block {deepest['block']})"
            )
            for r in results:
                curves.plot(r["loss_curve"], color=line.get_color(), alpha=0.4 + 0.6 * (r is deepest))
    by_block.set(xlabel="block", ylabel="modified Hamming metric", ylim=(-0.03, 1.03), title="input recovery by depth")
    by_position.set(xlabel="position", ylabel="modified Hamming metric", ylim=(-0.03, 1.03), title="by position")
    curves.set(xlabel="step", ylabel="inversion distance", yscale="log", title="inversion loss")
    by_block.xaxis.set_major_locator(MaxNLocator(integer=True))
    by_block.legend(fontsize=8)
    by_position.legend(fontsize=8)
    save_figure(fig, path, bbox_inches="tight")


def plot_loss_histories(
    histories: dict[str, dict[str, list[tuple[int, float]]]], path: str | os.PathLike, marks: dict | None = None
) -> None:
    """One panel per group (model family), one training-loss line per run; `marks[group][run]` = divergence step."""
    fig, axes = plt.subplots(1, len(histories), figsize=(6 * len(histories), 4.5), squeeze=False)
    for ax, (group, runs) in zip(axes[0], histories.items()):
        for name, points in runs.items():
            steps = [s for s, _ in points]
            line = ax.plot(steps, [v for _, v in points], label=name)[0]
            step = (marks or {}).get(group, {}).get(name)
            if step is not None:
                ax.axvline(step, color=line.get_color(), linestyle=":", alpha=0.8)
        ax.set(title=group, xlabel="step", ylabel="training loss", yscale="log")
        ax.legend(fontsize=8)
    save_figure(fig, path, bbox_inches="tight")


__all__ = ["plot_loss_histories", "plot_representation", "save_figure"]
