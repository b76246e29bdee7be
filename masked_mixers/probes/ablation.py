"""Architecture flexibility (Badger, arXiv 2409.01482): does a model still train without a part?

Each family is trained unablated and with one part removed at a time (layer norms, residual
connections, feed-forward) or, where the family has the switch, with the feed-forward replaced by
attention, all for the same budget. The paper trained with the HF Trainer's default gradient
clipping (1.0), which can hide the divergence it describes; `clip=False` trains every variant
without it (train.max_grad_norm 0), and the table records which. Whether and where a run diverged
is divergence.diverged_at (a NaN/inf loss, or one above 3 x ln(vocab)); a diverged run reports no
final or eval loss, and its min_loss is the best it logged before that step.
Llama variants use family "llama_ablated" (transformers' Llama modules with switchable parts;
identical to LlamaForCausalLM with every switch on), the unablated one included, so all Llama
runs share one code path.

Which families can be ablated is read from the family table (`Capabilities.ablation_switches`),
not listed here: a family that declares switches joins the sweep, and takes each ablation whose
switches it declares (the masked mixer has no feed_forward_attention: that row is skipped).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import UserError
from ..models import FAMILIES, Family
from ..runs.config import ModelSpec, RunConfig
from ..training.divergence import DIVERGENCE_FACTOR, diverged_at, healthy_points

# ablation name -> the ModelSpec switches it sets (every other switch keeps ModelSpec's default: the whole model)
ABLATIONS: dict[str, dict[str, bool]] = {
    "none": {},
    "no_layer_norm": {"use_layer_norm": False},
    "no_residual": {"use_residual": False},
    "no_feed_forward": {"use_feed_forward": False},
    "feed_forward_attention": {"feed_forward_attention": True},
}
_WHOLE = {f.name: f.default for f in dataclasses.fields(ModelSpec)}
SPIKE_FACTOR = 2.0  # a loss spike: a logged training loss above this many times the running median
SPIKE_WINDOW = 10  # the running median is over the (up to) this many losses logged just before


def _cli_name(family: Family) -> str:
    """The name an ablatable family goes by on the command line: the family it is a variant of.

    A family whose config class extends another family's (llama_ablated's AblatedLlamaConfig is a
    LlamaConfig) is that family with switches, so it is named after the nearest such family
    ("llama"); any other ablatable family (mixer) keeps its own name.
    """
    by_config = {f.config_class: f.name for f in FAMILIES.values()}
    return next((by_config[base] for base in family.config_class.__mro__[1:] if base in by_config), family.name)


def _ablatable_families() -> dict[str, str]:
    """CLI name -> family name, for every family of the table whose capabilities declare ablation switches."""
    names: dict[str, str] = {}
    for family in FAMILIES.values():
        if family.capabilities.ablation_switches:
            cli = _cli_name(family)
            if cli in names:  # two variants of one family: each keeps its own, unambiguous name
                cli = family.name
            names[cli] = family.name
    return names


# family named on the command line -> family of the table that honours the switches
ABLATABLE_FAMILIES: dict[str, str] = _ablatable_families()


def ablation_runs(
    run: RunConfig, families: Sequence[str], ablations: Sequence[str], out_dir: str | Path, clip: bool = True
) -> list[tuple[str, str, RunConfig]]:
    """(family, ablation, run config) for every variant: `run` with the family and switches replaced.

    Every variant keeps the run's sizes, data and training budget; each trains into its own
    out_dir/family/ablation directory. A NaN/inf loss stops a variant (train.on_nonfinite "stop"):
    "skip" would zero those steps and hide the divergence this sweep is looking for. `clip=False`
    turns gradient clipping off (train.max_grad_norm 0). An ablation whose switch a family does
    not declare is skipped for that family, with a printed line.
    """
    variants = []
    for family in families:
        if family not in ABLATABLE_FAMILIES:
            raise UserError(f"--families: unknown family {family!r} (choose from {', '.join(ABLATABLE_FAMILIES)})")
        switches = FAMILIES[ABLATABLE_FAMILIES[family]].capabilities.ablation_switches
        for ablation in ablations:
            if ablation not in ABLATIONS:
                raise UserError(f"--ablations: unknown ablation {ablation!r} (choose from {', '.join(ABLATIONS)})")
            lacking = set(ABLATIONS[ablation]) - set(switches)
            if lacking:
                print(
                    f"{family}: skipping {ablation} "
                    f"(family {ABLATABLE_FAMILIES[family]} has no {', '.join(lacking)} switch)"
                )
                continue
            variant = copy.deepcopy(run)
            variant.model.family = ABLATABLE_FAMILIES[family]
            variant.model.name = f"{family}-{ablation}"
            for switch in switches:
                setattr(variant.model, switch, ABLATIONS[ablation].get(switch, _WHOLE[switch]))
            variant.train.output_dir = str(Path(out_dir) / family / ablation)
            variant.train.on_nonfinite = "stop"
            if not clip:
                variant.train.max_grad_norm = 0.0
            variants.append((family, ablation, variant))
    return variants


def loss_points(history: Sequence[dict]) -> list[tuple[int, float]]:
    """(step, training loss) from a training history (entries without a training loss are skipped)."""
    return [(int(h["step"]), float(h["loss"])) for h in history if h.get("loss") is not None]


def loss_spikes(losses: Sequence[float], factor: float = SPIKE_FACTOR, window: int = SPIKE_WINDOW) -> int:
    """How many logged losses exceed `factor` x the median of the (up to) `window` finite losses logged just before.

    A non-finite loss counts as a spike (a loss gone to infinity is the largest spike there is); the
    first loss has no running median and is never one.
    """
    spikes, before = 0, []
    for loss in losses:
        if before and (not math.isfinite(loss) or loss > factor * statistics.median(before[-window:])):
            spikes += 1
        if math.isfinite(loss):
            before.append(loss)
    return spikes


def largest_grad_norm(history: Sequence[dict]) -> float | None:
    """The largest gradient norm logged (before clipping; inf when one was not finite); None when none was logged."""
    norms = [float(h["grad_norm"]) for h in history if h.get("grad_norm") is not None]
    return max(norms, key=lambda n: math.inf if math.isnan(n) else n) if norms else None


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def summarize_run(
    family: str,
    ablation: str,
    history: Sequence[dict],
    eval_metrics: dict | None,
    parameters: int,
    vocab_size: int,
    max_grad_norm: float | None = None,
    factor: float = DIVERGENCE_FACTOR,
) -> dict:
    """One table row: where the run diverged (divergence.diverged_at, or None), its final, best and eval loss, its
    clipping (0: none), and its instability: the largest gradient norm logged and the number of loss spikes
    (`loss_spikes`, over every logged loss, the one that diverged included).

    A diverged run has no final or eval loss (None); its min_loss is the best loss logged before it diverged.
    """
    points = loss_points(history)
    healthy = [v for _, v in healthy_points(points, vocab_size, factor)]
    step = diverged_at(points, vocab_size, factor)
    eval_metrics = (eval_metrics or {}) if step is None else {}
    return dict(
        family=family,
        ablation=ablation,
        parameters=parameters,
        diverged_at=step,
        final_loss=healthy[-1] if healthy and step is None else None,
        min_loss=min(healthy) if healthy else None,
        eval_loss=_finite_or_none(eval_metrics.get("eval_loss", eval_metrics.get("loss"))),
        steps=points[-1][0] if points else 0,
        max_grad_norm=max_grad_norm,
        largest_grad_norm=largest_grad_norm(history),
        loss_spikes=loss_spikes([v for _, v in points]),
    )


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[dict]) -> str:
    """The rows as a GitHub markdown table; '-' marks a run that did not diverge or has no value."""
    columns = [
        "family",
        "ablation",
        "parameters",
        "diverged_at",
        "final_loss",
        "min_loss",
        "eval_loss",
        "steps",
        "max_grad_norm",
        "largest_grad_norm",
        "loss_spikes",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    clip = {0.0: "0 (off)"}  # max_grad_norm 0: no clipping
    lines += [
        "| "
        + " | ".join(
            clip.get(row.get(c), _cell(row.get(c))) if c == "max_grad_norm" else _cell(row.get(c)) for c in columns
        )
        + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


__all__ = [
    "ABLATABLE_FAMILIES",
    "ABLATIONS",
    "SPIKE_FACTOR",
    "SPIKE_WINDOW",
    "ablation_runs",
    "largest_grad_norm",
    "loss_points",
    "loss_spikes",
    "markdown_table",
    "summarize_run",
]
