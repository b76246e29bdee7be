"""report.md (for people) and results.json (for scripts) of a comparison, with the same numbers."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import torch
import transformers
import yaml

from ..core.configfile import to_dict
from ..core.files import atomic_write_json, atomic_write_text
from ..training.tasks import AUTOENCODE, CAUSAL_LM
from .config import CompareConfig
from .plots import PLOTS
from .retrieval import render_retrieval

# results.json row key -> report table column, and how to print it; one table per task
_RUN = {
    "label": ("model", "{}"),
    "steps": ("steps", "{:,}"),
    "parameters": ("parameters", "{:,}"),
    "train_loss": ("train loss", "{:.4f}"),
}
_COST = {
    "tokens_per_second": ("train tokens/s", "{:,.0f}"),
    "peak_memory_mib": ("peak memory (MiB)", "{:,.1f}"),
    "flops": ("train FLOPs", "{:.4g}"),
    "train_seconds": ("train time (s)", "{:.1f}"),
    "cpu_seconds": ("CPU time (s)", "{:.1f}"),
    "wall_seconds": ("wall time (s)", "{:.1f}"),
    "stopped_by": ("stopped by", "{}"),
}
GPU_COLUMN = {"gpu_seconds": ("GPU time (s)", "{:.1f}")}  # shown when some row ran on CUDA
COLUMNS = {
    **_RUN,
    "eval_loss": ("eval loss", "{:.4f}"),
    "perplexity": ("perplexity", "{:.2f}"),
    "bits_per_byte": ("bits/byte", "{:.4f}"),
    **_COST,
}
RECONSTRUCTION_COLUMNS = {
    **_RUN,
    "eval_loss": ("reconstruction loss", "{:.4f}"),
    "token_accuracy": ("token accuracy", "{:.2%}"),
    "exact_match": ("exact match", "{:.2%}"),
    **_COST,
}
COMPLETION_COLUMNS = {
    **_RUN,
    "eval_loss": ("completion loss", "{:.4f}"),
    "token_accuracy": ("token accuracy", "{:.2%}"),
    **_COST,
}
TABLES = {CAUSAL_LM: COLUMNS, AUTOENCODE: RECONSTRUCTION_COLUMNS}

# train.objective -> what the report says about it (objectives/); "clm" says nothing new
OBJECTIVE_NOTES = {
    "clm": "Objective: next-token prediction (clm).",
    "mtp": "Objective: multi-token prediction (mtp, n = {mtp_tokens}, mode {mtp_mode}); the eval loss is still the "
    "plain next-token loss of the main head, so it compares with a clm model's; the loss of each pass/head is in "
    "its own table.",
    "completion": "Objective: one-step completion (the first L/2 tokens predict the last L/2 in one forward pass; "
    "the hidden states of the predicted half are replaced by a learned vector at the middle block). Completion "
    "loss is the mean cross entropy (nats) over the predicted half only; token accuracy is the share of those "
    "tokens whose argmax is right.",
}

TITLES = {CAUSAL_LM: "language modelling", AUTOENCODE: "autoencoding through a one-vector bottleneck"}
METRIC_NOTES = {
    CAUSAL_LM: "Eval loss is the mean next-token cross entropy (nats) over the held-out examples; bits/byte "
    "divides it by the UTF-8 bytes covered.",
    AUTOENCODE: "Reconstruction loss is the mean cross entropy (nats) of every held-out token against its own "
    "position's prediction (no shift), pads ignored; token accuracy is the share of those tokens whose argmax "
    "is right; exact match is the share of whole sequences rebuilt without a single wrong token.",
}


def _git_revision() -> str | None:
    """The commit the package runs from (+ "-dirty" with local changes), when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("-dirty" if dirty else "")


def _device_name() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
    model = platform.processor() or platform.machine()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"cpu: {model}, {torch.get_num_threads()} threads"


def environment(dtype: str) -> dict[str, str | None]:
    return {
        "git_revision": _git_revision(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": _device_name(),
        "dtype": dtype,
        "platform": platform.platform(),
    }


def _cell(row: dict, key: str, columns: dict) -> str:
    value = row.get(key)
    return "n/a" if value is None else columns[key][1].format(value)


def _table(rows: list[dict], columns: dict) -> str:
    lines = ["| " + " | ".join(title for title, _ in columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row, key, columns) for key in columns) + " |" for row in rows]
    return "\n".join(lines)


def _matching(matches: list[dict]) -> str:
    if not matches:
        return ""
    lines = ["## Size matching (measured peak training memory)", ""]
    for m in matches:
        lines.append(
            f"- {m['label']}: hidden_size {m['hidden_size']} uses {m['peak_bytes'] / 2**20:.1f} MiB vs "
            f"{m['reference']} {m['reference_bytes'] / 2**20:.1f} MiB ({m['relative_gap']:.1%} apart; "
            f"measured sizes: {', '.join(str(d) for d in m['measurements'])})"
        )
    return "\n".join(lines) + "\n"


def _samples(rows: list[dict]) -> str:
    lines = ["## Samples", "", "Greedy and one seeded sample per prompt, new tokens only.", ""]
    for row in rows:
        lines.append(f"### {row['label']}")
        lines.append("")
        for s in row["samples"]:
            lines += [f"- **{s['prompt']}** | greedy: {s['greedy']!r}", f"  | sample: {s['sample']!r}"]
        if not row["samples"]:
            lines.append(
                "- (none: a bidirectional model reads the tokens after each prediction, so it cannot continue a prompt)"
            )
        lines.append("")
    return "\n".join(lines)


def _reconstructions(rows: list[dict]) -> str:
    lines = [
        "## Reconstructions",
        "",
        "The same held-out examples, rebuilt from each model's bottleneck (argmax per position).",
        "",
    ]
    for row in rows:
        lines += [f"### {row['label']}", ""]
        for r in row["reconstructions"]:
            lines += [
                f"- input: {r['input']!r}",
                f"  | rebuilt ({r['token_accuracy']:.0%} of tokens right): {r['reconstruction']!r}",
            ]
        lines.append("")
    return "\n".join(lines)


def _objective(results: dict) -> tuple[str, dict]:
    """The objective's note and the main table's columns."""
    train = results["config"]["train"]
    name = train.get("objective", "clm")
    columns = COMPLETION_COLUMNS if name == "completion" else TABLES[results["task"]]
    return OBJECTIVE_NOTES[name].format(**train), columns


def _mtp_table(rows: list[dict]) -> str:
    """Held-out loss of every pass/head i (token p + 1 + i from position p) per model."""
    width = max((len(r.get("mtp_losses") or []) for r in rows), default=0)
    if not width:
        return ""
    lines = [
        "## Multi-token prediction: held-out loss of each pass/head",
        "",
        "| model | " + " | ".join(f"token +{i + 1}" for i in range(width)) + " |",
        "|---|" + "---|" * width,
    ]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(f"{v:.4f}" for v in r.get("mtp_losses") or []) + " |")
    return "\n".join(lines) + "\n"


def _with_gpu(columns: dict, rows: list[dict]) -> dict:
    """The table's columns, with GPU time before the CPU time when any row has one."""
    if not any(r.get("gpu_seconds") is not None for r in rows):
        return columns
    keys = list(columns)
    at = keys.index("cpu_seconds") if "cpu_seconds" in keys else len(keys)
    return {k: columns[k] for k in keys[:at]} | GPU_COLUMN | {k: columns[k] for k in keys[at:]}


def budget_sentence(budget: dict, rows: list[dict]) -> str:
    """Which limit budgets the comparison, the others, and what stopped each row (a budget by wall
    clock measures the machine's load too; training FLOPs and CPU time do not)."""
    kind = budget_kind(budget)
    limits = {
        "max_steps": budget["max_steps"],
        "max_seconds": budget["max_seconds"],
        "max_flops": budget.get("max_flops"),
        "max_compute_seconds": budget.get("max_compute_seconds"),
    }
    shown = {k: f"{v:.3g}" if k == "max_flops" and v is not None else v for k, v in limits.items()}
    head = {
        "max_flops": f"Budget: training FLOPs (max_flops={shown['max_flops']}): each model trains the whole steps "
        "its own analytic "
        "training FLOPs per step fit into (the count of `masked-mixers bench`: 3 x forward matrix-multiply FLOPs per "
        "token)",
        "max_seconds": f"Budget: wall-clock (max_seconds={shown['max_seconds']}), which also measures how loaded the "
        "machine was: compare the CPU time column",
        "max_compute_seconds": f"Budget: compute time (max_compute_seconds={shown['max_compute_seconds']}): GPU "
        "seconds of the training steps on a GPU, else this process's CPU seconds inside them; not the machine's load, "
        "but a CPU's seconds depend on which CPU",
        "max_steps": f"Budget: steps (max_steps={shown['max_steps']}), the same training tokens for every model",
    }[kind]
    own = budget.get("per_family_max_steps")
    if kind == "max_steps" and own:  # the caller set step limits per model: not the same tokens
        shown_own = ", ".join(f"{key} {steps}" for key, steps in own.items())
        head = f"Budget: steps set per model (per_family max_steps: {shown_own}; others max_steps={shown['max_steps']})"
    others = ", ".join(f"{k}={v}" for k, v in shown.items() if k != kind and limits[k] is not None)
    stops = "; ".join(
        f"{r['label']} stopped by {r.get('stopped_by', 'unknown')} after {r['steps']:,} steps" for r in rows
    )
    return (
        f"{head}{f', also capped by {others}' if others else ''}. A model stops at whichever limit comes first: "
        f"{stops}. "
        f"Every model reads the same token stream (batch {budget['batch_size']} x its seq_len per step)."
    )


def budget_kind(budget: dict) -> str:
    """The limit a comparison is budgeted by: the first set of max_flops, max_compute_seconds, max_seconds, else
    max_steps."""
    return next((k for k in ("max_flops", "max_compute_seconds", "max_seconds") if budget.get(k)), "max_steps")


def render_markdown(results: dict) -> str:
    env = results["environment"]
    budget = results["budget"]
    task = results["task"]
    objective_note, columns = _objective(results)
    parts = [
        f"# Masked mixer vs transformer comparison: {TITLES[task]}",
        "",
        budget_sentence(budget, results["models"]) + f" Size matching: {results['size_matching']}.",
        objective_note,
        METRIC_NOTES[task] + " Peak memory is the training run's peak above its start (CUDA allocator on a GPU; "
        "sampled resident memory on a CPU). Train time is training's wall clock; CPU time is this process's over the "
        "same span (all threads; well under train time x threads means the machine was shared); GPU time is the CUDA "
        "time of the training steps; wall time also includes the final evaluation and samples.",
        "",
        _table(results["models"], _with_gpu(columns, results["models"])),
        "",
        _mtp_table(results["models"]),
        "![eval loss vs time](eval_loss_vs_time.png) ![eval loss vs tokens](eval_loss_vs_tokens.png)",
        "",
        _matching(results["matches"]),
        render_retrieval(results.get("retrieval")),
        _reconstructions(results["models"]) if task == AUTOENCODE else _samples(results["models"]),
        "## Environment",
        "",
        *[f"- {k}: {v}" for k, v in env.items()],
        "",
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(results["config"], sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(parts)


def _budget(config: CompareConfig) -> dict:
    """results.json's budget: every limit, and `kind`, the one the comparison is budgeted by."""
    t = config.train
    limits = {
        "max_steps": t.max_steps,
        "max_seconds": t.max_seconds,
        "max_flops": t.max_flops,
        "max_compute_seconds": t.max_compute_seconds,
        "batch_size": t.batch_size,
    }
    own = {key: o.max_steps for key, o in config.per_family.items() if o.max_steps is not None}
    return {**limits, "kind": budget_kind(limits), **({"per_family_max_steps": own} if own else {})}


def write_report(
    output_dir: Path,
    config: CompareConfig,
    task: str,
    rows: list[dict],
    matches: list[dict],
    env: dict,
    retrieval: dict | None = None,
) -> Path:
    """Write results.json and report.md (each atomically) and return the report's path.

    retrieval: the retrieval task's results (compare/retrieval.py), kept under "retrieval" when given.
    """
    results = {
        "task": task,
        "objective": config.train.objective,
        "environment": env,
        "size_matching": config.size_matching,
        "budget": _budget(config),
        "models": rows,
        "matches": matches,
        "plots": list(PLOTS),
        "config": to_dict(config),
    }
    if retrieval:
        results["retrieval"] = retrieval
    atomic_write_json(output_dir / "results.json", results)
    atomic_write_text(output_dir / "report.md", render_markdown(results))
    return output_dir / "report.md"
