"""What the probes write: represent.json/.png and ablation.md/.json/.png, and the lines they print.

The JSON files hold every number (for scripts), the markdown table and the printed lines the
headline ones (for people); the figures come from plotting.py. Files are replaced atomically, so
a report rewritten while a sweep runs is always whole.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..files import atomic_write_text
from .ablation import markdown_table


def write_representation_report(report: dict, out: Path) -> tuple[Path, Path]:
    """represent.json (settings, inputs, every model's results) and represent.png; returns both paths."""
    from .plotting import plot_representation  # matplotlib only when a report is drawn

    json_path, png_path = out / "represent.json", out / "represent.png"
    atomic_write_text(json_path, json.dumps(report, indent=1))
    plot_representation(report, png_path)
    return json_path, png_path


def print_representation(report: dict) -> None:
    """One line per model and block: the Hamming metric, top-1 recovery and the final inversion loss."""
    top_k = report["settings"]["top_k"]
    for entry in report["models"]:
        for r in entry["results"]:
            print(f"{entry['label']:<40} block {r['block']:>2}  hamming@{top_k} {r['hamming']:.3f}  top-1 {r['top1']:.3f}  loss {r['final_loss']}")


def write_ablation_report(rows: list[dict], histories: dict, out: Path) -> None:
    """ablation.md, ablation.json (rows + loss histories) and ablation.png (loss curves, divergence marked).

    histories: family -> ablation -> [(step, loss)]; a NaN/inf loss is written to JSON as null.
    """
    from .plotting import plot_loss_histories

    atomic_write_text(out / "ablation.md", markdown_table(rows))
    curves = {f: {a: [(s, v if math.isfinite(v) else None) for s, v in pts] for a, pts in runs.items()} for f, runs in histories.items()}
    atomic_write_text(out / "ablation.json", json.dumps(dict(rows=rows, loss_histories=curves), indent=1))
    marks = {row["family"]: {} for row in rows}
    for row in rows:
        marks[row["family"]][row["ablation"]] = row["diverged_at"]
    plot_loss_histories(histories, out / "ablation.png", marks)


__all__ = ["print_representation", "write_ablation_report", "write_representation_report"]
