"""The scaling report: scaling.json (the analysis as is), scaling.md (tables per context length) and
scaling.png (plots.py), written atomically into a folder; each name is recorded in the folder's
manifest and a file of that name that masked-mixers did not write is refused, never replaced.
"""

from __future__ import annotations

from pathlib import Path

from ..core.files import atomic_write_json, atomic_write_text, make_dir
from ..runs import manifest
from .analysis import NO_CROSSOVER

FILES = ("scaling.json", "scaling.md", "scaling.png")
SIZE_WORDS = {"non_embedding_params": "non-embedding parameters", "params": "all parameters"}


def _g(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _ci(interval) -> str:
    return "-" if not interval else f"[{_g(interval[0])}, {_g(interval[1])}]"


def _holdout_cells(holdout: dict) -> list[str]:
    if holdout["status"] != "checked":
        return [holdout["status"], "-"]
    bound = " (a bound)" if holdout["measured_is_bound"] else ""
    measured = f"{_g(holdout['measured_loss'], 4)}{bound}"
    return [
        f"{_g(holdout['predicted_loss'], 4)} vs {measured} at {_g(holdout['budget_flops'])}",
        f"{_g(holdout['abs_error'])} ({100 * holdout['rel_error']:.1f}%)",
    ]


def _frontier_table(families: dict) -> list[str]:
    lines = [
        "| family | exponent b | 95% CI | a | E | E rule | fitted on (bounds) | holdout: predicted vs measured | "
        "holdout error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, fam in families.items():
        bounds = sum(p["bound"] for p in fam["points"])
        cells = [name, _g(fam["exponent"], 4), _ci(fam["exponent_ci"]), _g(fam["a"]), _g(fam["E"], 4)]
        cells += [fam["irreducible_rule"], f"{len(fam['points'])} budgets ({bounds})", *_holdout_cells(fam["holdout"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _optima_table(families: dict) -> list[str]:
    lines = [
        "| family | budget (FLOPs) | sizes (lrs each) | optimal N | optimal loss | how |",
        "|---|---|---|---|---|---|",
    ]
    for name, fam in families.items():
        for b in fam["budgets"]:
            lrs = sorted({r["learning_rates_tried"] for r in b["runs"]})
            cells = [name, _g(b["budget_flops"]), f"{len(b['runs'])} ({'/'.join(map(str, lrs))})"]
            cells += [_g(b["optimal_size"]), _g(b["optimal_loss"], 4), b["note"]]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _crossover_lines(crossovers: list[dict]) -> list[str]:
    lines = []
    for entry in crossovers:
        pair = " vs ".join(entry["families"])
        share = entry["share_in_range"]
        share_text = "" if share is None else f"; {100 * share:.0f}% of bootstrap resamples cross in the measured range"
        found = entry["crossover"]
        if isinstance(found, dict):
            text = f"{_g(found['flops'])} FLOPs, 95% CI {_ci(found['ci'])}; {found['lower_below']} lower below it"
        else:
            text = "no crossover in the measured range" if found == NO_CROSSOVER else found
        extra = entry["extrapolated"]
        if extra:
            text += (
                f"; by extrapolation (not measured): {_g(extra['flops'])} FLOPs, 95% CI {_ci(extra['ci'])}, "
                f"{extra['lower_below']} lower below it"
            )
        elif found == NO_CROSSOVER:
            text += "; none within 1000x of the measured budgets either"
        lines.append(f"- {pair}: {text}{share_text}.")
    return lines or ["- one family only: no crossover to compute."]


def _design_lines(families: dict) -> list[str]:
    lines = []
    for name, fam in families.items():
        d = fam["design"]
        verdict = "meets" if d["meets_isoflop_design"] else "does NOT meet"
        sizes = "/".join(map(str, d["sizes_per_budget"]))
        rates = "/".join(map(str, d["learning_rates_per_size"]))
        lines.append(
            f"- {name}: {d['budgets']} budgets x {sizes} sizes, learning rates per size {rates}: "
            f"{verdict} the isoFLOP design (>= 3 budgets x >= 4 sizes)"
        )
    return lines


def markdown(analysis: dict) -> str:
    boot = analysis["bootstrap"]
    excluded = analysis["excluded"]
    lines = [
        "# Scaling: isoFLOP frontiers per family",
        "",
        f"Rows: {analysis['rows']} ({excluded['failed']} failed, {excluded['diverged']} diverged, "
        f"{excluded['unbudgeted']} without a FLOPs budget, {excluded['short_of_budget']} stopped short of their "
        "budget: left out). Model size N = "
        f"{SIZE_WORDS[analysis['size']]}; compute C = {analysis['flops']}; each size at its best learning rate. "
        f"Frontier L*(C) = a * C^(-b) (+ E); 95% intervals from {boot['resamples']} bootstrap resamples "
        f"(seed {boot['seed']}) of the runs within each budget. docs/scaling.md explains each number.",
    ]
    for context in analysis["contexts"]:
        families = context["families"]
        lines += ["", f"## L = {context['seq_len']}", "", context["summary"] + ".", "", *_design_lines(families)]
        lines += ["", "### Frontier", "", *_frontier_table(families)]
        lines += ["", "### Crossover", "", *_crossover_lines(context["crossovers"])]
        lines += ["", "### Optimal size and loss per budget", "", *_optima_table(families)]
    if not analysis["contexts"]:
        lines += ["", "No usable rows: every row failed, diverged or had no FLOPs budget."]
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path, analysis: dict) -> list[Path]:
    """Write FILES into `folder` (created if needed); returns their paths."""
    from .plots import plot_scaling  # matplotlib only when a report is drawn

    folder = make_dir(folder)
    for name in FILES:
        manifest.check_own(folder, name)
    manifest.record(folder, *FILES, what="scaling")
    json_path, md_path, png_path = (folder / name for name in FILES)
    atomic_write_json(json_path, analysis)
    atomic_write_text(md_path, markdown(analysis))
    plot_scaling(analysis, png_path)
    return [json_path, md_path, png_path]


__all__ = ["FILES", "markdown", "write_report"]
