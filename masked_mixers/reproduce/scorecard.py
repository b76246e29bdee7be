"""The scorecard: scorecard.md, scorecard.json and scorecard.png, rewritten after every finding.

Per finding: the claim, the published numbers, the protocol, the budget each run used, what was
measured (a table), each check with its verdict and reason, and links to the reports the
finding's runs wrote. The JSON holds the same, plus the scale, the environment and timings.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.files import atomic_write_json, atomic_write_text, save_figure
from .verdict import AGREES, DISAGREES

MARK = {AGREES: "agrees", DISAGREES: "**disagrees**"}


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows] + [""]


def _measured(measured: dict) -> str:
    return "; ".join(f"{name} " + ", ".join(_cell(v) for v in values) for name, values in measured.items())


def _statistics(check: dict) -> str:
    """Paired gaps, n and the 95% interval of a compared check ('-' where there is none: a yes/no check, a missing
    value)."""
    gaps = ", ".join(f"{g:+.4g}" for g in check.get("gaps") or []) or "-"
    low_high = check.get("interval")
    ci = f"[{low_high[0]:+.4g}, {low_high[1]:+.4g}]" if low_high else "-"
    return f"{gaps} | {check.get('n', '-')} | {ci}"


def _verdict(entry: dict) -> str:
    return MARK.get(entry["verdict"], entry["verdict"]) + (" (**stale**)" if entry.get("stale") else "")


def _provenance(entry: dict) -> list[str]:
    """Where the finding came from (runner._provenance) and, when it is kept from other code, why it is stale."""
    p = entry.get("provenance") or {}
    line = (
        f"**Provenance.** version {p.get('version', '-')}, revision `{p.get('revision') or '-'}`, "
        f"code sha256 `{p.get('code_sha256', '-')}`, config sha256 `{p.get('config_sha256', '-')}`"
    )
    return [line, ""] + ([f"**Stale.** {entry['stale']}", ""] if entry.get("stale") else [])


def _finding(entry: dict) -> list[str]:
    lines = [
        f"## {entry['id']}. {entry['title']}: {_verdict(entry)}",
        "",
        f"**Claim.** {entry['claim']}",
        "",
        f"**Published.** {entry['published']}",
        "",
        f"**Protocol.** {entry['protocol']}",
        "",
        f"**Budget.** {entry['budget']}",
        "",
        f"**Verdict.** {entry['verdict']}: {entry['reason']}",
        "",
        *_provenance(entry),
    ]
    if entry.get("error"):
        return lines + [f"**Failed.** `{entry['error']}`", ""]
    lines += [
        "| check | published | measured (per seed) | paired gaps (> 0: first side better) | n "
        "| 95% CI of the mean gap | verdict | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for check in entry["checks"]:
        claim = ("*variant:* " if check["variant"] else "") + check["claim"]
        lines.append(
            f"| {claim} | {check['published']} | {_measured(check['measured'])} | {_statistics(check)} "
            f"| {check['verdict']} | {check['reason']} |"
        )
    lines += ["", *_table(entry["table"])]
    lines += [f"- note: {note}" for note in entry.get("notes", [])]
    lines += [
        f"- time: {entry['seconds']:.0f} s wall, {entry['cpu_seconds']:.0f} s CPU (this process and its workers)",
        "",
    ]
    links = [f"[{a}]({a})" for a in entry.get("artifacts", [])]
    return lines + (["Reports: " + ", ".join(links), ""] if links else [])


def render(card: dict) -> str:
    scale = card["scale"]
    lines = [
        f"# Scorecard: the paper's findings at scale `{scale['name']}`",
        "",
        "Badger, *Masked Mixers for Language Generation and Retrieval* (arXiv 2409.01482), findings as listed in "
        "docs/findings.md, each run with the paper's protocol. Command: `" + card["command"] + "`.",
        "",
        "Verdicts: per check, the per-seed paired gaps, their mean and its 95% confidence interval (Student's t). "
        "**agrees** / **disagrees** only with at least 3 seeds and an interval wholly on one side of the claim's "
        'threshold (0 for a direction, the stated effect for a size claim such as "far", the band\'s edge for a '
        'parity claim); otherwise **inconclusive** (fewer seeds: "too few seeds"). On identical sides the rule is '
        "decisive 5% of the time. docs/reproduce.md states the rule.",
        "",
        "Provenance: each finding names the package version, git revision and code and config hashes it was "
        "measured with; a finding kept from other code by `--reuse-stale` is marked **stale**.",
        "",
        "| finding | verdict | reason | budget | seeds | revision | code sha256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in card["findings"]:
        p = entry.get("provenance") or {}
        lines.append(
            f"| {entry['id']} {entry['title']} | {_verdict(entry)} | {entry['reason']} | "
            f"{entry['budget']} | {entry['seeds']} | {(p.get('revision') or '-')[:12]} "
            f"| {p.get('code_sha256', '-')[:12]} |"
        )
    lines += ["", "![headline numbers per finding](scorecard.png)", ""]
    for entry in card["findings"]:
        lines += _finding(entry)
    lines += ["## Scale and environment", "", "```json", json.dumps(scale, indent=1), "```", ""]
    lines += [f"- {k}: {v}" for k, v in card["environment"].items()]
    lines += [f"- total: {card['seconds']:.0f} s wall, {card['cpu_seconds']:.0f} s CPU", ""]
    return "\n".join(lines)


def _colour(side: str) -> str:
    """The colour of the family a side names (`Family.colour`: mixers blue, transformers orange; the
    longest name found wins, so "mixer_autoencoder" is not read as "mixer"); F3's "transformer" is
    the Llama autoencoder; the unigram baseline is grey; F7's mixer variants ("linear",
    "near_linear") name no family and are drawn as mixers."""
    from ..models import FAMILIES

    if "unigram" in side:
        return "0.6"
    named = [name for name in FAMILIES if name in side] or (["llama"] if "transformer" in side else ["mixer"])
    return FAMILIES[max(named, key=len)].colour


def plot(card: dict, path: Path) -> None:
    """One panel per finding: its headline number per side, a dot per seed and a bar at the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in card["findings"] if e.get("headline")]
    if not entries:
        return
    columns = min(4, len(entries))
    rows = -(-len(entries) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.8 * columns, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(entries) :]:
        ax.axis("off")
    for ax, entry in zip(axes.flat, entries):
        values = entry["headline"]["values"]
        for i, (side, seeds) in enumerate(values.items()):
            finite = [v for v in seeds if v is not None]
            if finite:
                ax.bar(i, sum(finite) / len(finite), color=_colour(side), alpha=0.5)
                ax.plot([i] * len(finite), finite, "k.", ms=5)
        ax.set_xticks(range(len(values)), list(values), rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{entry['id']}: {entry['verdict']}", fontsize=9)
        ax.set_ylabel(entry["headline"]["metric"], fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write(card: dict, output_dir: Path) -> list[Path]:
    """scorecard.json, scorecard.md and scorecard.png in output_dir, each written atomically."""
    paths = [output_dir / "scorecard.json", output_dir / "scorecard.md", output_dir / "scorecard.png"]
    atomic_write_json(paths[0], card)
    atomic_write_text(paths[1], render(card))
    plot(card, paths[2])
    return paths


__all__ = ["plot", "render", "write"]
