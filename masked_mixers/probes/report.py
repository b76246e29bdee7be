"""What the probes write: represent.json/.png and ablation.md/.json/.png, and the lines they print.

The JSON files hold every number (for scripts), the markdown table and the printed lines the
headline ones (for people); the figures come from plotting.py. Files are replaced atomically, so
a report rewritten while a sweep runs is always whole.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..core.files import atomic_write_json, atomic_write_text
from .ablation import markdown_table


def write_representation_report(report: dict, out: Path) -> tuple[Path, Path, Path]:
    """represent.json (protocols, inputs, every model's results), represent.md (the table) and represent.png."""
    from .plotting import plot_representation  # matplotlib only when a report is drawn

    json_path, md_path, png_path = out / "represent.json", out / "represent.md", out / "represent.png"
    atomic_write_json(json_path, report, indent=1)
    atomic_write_text(md_path, representation_table(report))
    plot_representation(report, png_path)
    return json_path, md_path, png_path


def _describe(settings: dict) -> str:
    schedule = settings["schedule"] + (
        f" to {settings['final_lr_fraction']:g} x lr" if settings["schedule"] == "linear" else ""
    )
    return (
        f"{settings['optimizer']} lr {settings['learning_rate']:g} ({schedule}), {settings['steps']} steps, "
        f"{settings['loss']} {settings['reduction']}, start {settings['start']}, decode {settings['decode']}, "
        f"top-{settings['top_k']} averaged per {settings['average']}"
    )


def representation_table(report: dict) -> str:
    """Markdown: one row per model and block, one column per protocol (its modified Hamming metric), then what
    each protocol was."""
    names = [p["protocol"] for p in report["protocols"]]
    lines = ["| model | block | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for entry in report["models"]:
        cells: dict[int, dict[str, float]] = {}
        for r in entry["results"]:
            cells.setdefault(r["block"], {})[r["protocol"]] = r["hamming"]
        for block, by_protocol in cells.items():
            values = [f"{by_protocol[n]:.3f}" if n in by_protocol else "-" for n in names]
            lines.append(f"| {entry['label']} | {block} | " + " | ".join(values) + " |")
    lines += ["", "Cells: modified Hamming metric (0 = every input token recovered, 1 = none)."]
    lines += [f"- {p['protocol']}: {_describe(p)}" for p in report["protocols"]]
    return "\n".join(lines) + "\n"


def print_representation(report: dict) -> None:
    """The table of represent.md."""
    print(representation_table(report), end="")


def write_ablation_report(rows: list[dict], histories: dict, out: Path) -> None:
    """ablation.md, ablation.json (rows + loss histories) and ablation.png (loss curves, divergence marked).

    histories: family -> ablation -> [(step, loss)]; a NaN/inf loss is written to JSON as null.
    """
    from .plotting import plot_loss_histories

    atomic_write_text(out / "ablation.md", markdown_table(rows))
    curves = {
        f: {a: [(s, v if math.isfinite(v) else None) for s, v in pts] for a, pts in runs.items()}
        for f, runs in histories.items()
    }
    atomic_write_json(out / "ablation.json", dict(rows=rows, loss_histories=curves), indent=1)
    marks = {row["family"]: {} for row in rows}
    for row in rows:
        marks[row["family"]][row["ablation"]] = row["diverged_at"]
    plot_loss_histories(histories, out / "ablation.png", marks)


__all__ = ["print_representation", "representation_table", "write_ablation_report", "write_representation_report"]
