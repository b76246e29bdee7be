"""`masked-mixers ablate` end to end: train every variant on the same data, find where any diverged, report.

ablation.py builds the variants (one run config per family and ablation) and scores a loss
history; this module prepares the data once, trains each variant through the normal training
path, and rewrites the report after every variant so a long sweep can be watched while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.files import check_output_dir
from ..runs.config import RunConfig, load_run_config, to_dict
from ..runs.factory import build_model, count_parameters
from ..training.divergence import DIVERGENCE_FACTOR
from .ablation import ABLATABLE_FAMILIES, ABLATIONS, ablation_runs, loss_points, markdown_table, summarize_run
from .report import write_ablation_report


@dataclass
class AblateRequest:
    """What `ablate` was asked for; field names are the command's options (see commands/ablate.py)."""

    config: str
    families: list[str] = field(default_factory=lambda: list(ABLATABLE_FAMILIES))
    ablations: list[str] = field(default_factory=lambda: list(ABLATIONS))
    divergence_factor: float = DIVERGENCE_FACTOR
    clip: bool = True
    overrides: list[str] = field(default_factory=list)
    out: str = "runs/ablate"


def train_variant(variant: RunConfig, prepared) -> tuple[list[dict], dict, int]:
    """(loss history, eval metrics, parameter count) of one variant.

    A NaN/inf loss stops that run (train.on_nonfinite "stop"); its history is what metrics.jsonl
    logged up to then, plus a NaN point at the step that failed, so the sweep records it and goes on.
    """
    from ..runs.rundir import read_metrics
    from ..training.train import train
    from ..training.trainer import NonFiniteLoss

    try:
        result = train(variant, prepared)
    except NonFiniteLoss as err:
        print(f"  {err}")
        history = read_metrics(variant.train.output_dir)
        model, _ = build_model(variant.model, len(prepared.tokenizer))
        return history + [dict(step=err.step, loss=math.nan)], {}, count_parameters(model).total
    return result.history, result.eval_metrics, count_parameters(result.model).total


def run_ablation(request: AblateRequest) -> list[dict]:
    """Train every (family, ablation) variant for the config's budget; returns the table rows, writes the report."""
    from ..data import prepare_data

    if not (math.isfinite(request.divergence_factor) and request.divergence_factor > 1):
        raise UserError(f"--divergence-factor must be a number above 1, got {request.divergence_factor}")
    run_config = load_run_config(request.config, request.overrides)
    out = Path(request.out).expanduser()
    check_output_dir(out)
    variants = ablation_runs(run_config, request.families, request.ablations, out, clip=request.clip)
    prepared = prepare_data(run_config.data, run_config.model.seq_len)  # one tokenization shared by every variant
    rows, histories = [], {}
    for i, (family, ablation, variant) in enumerate(variants, 1):
        print(f"[{i}/{len(variants)}] {family} {ablation}: training into {variant.train.output_dir}")
        history, eval_metrics, parameters = train_variant(variant, prepared)
        vocab = len(prepared.tokenizer)
        row = summarize_run(
            family,
            ablation,
            history,
            eval_metrics,
            parameters,
            vocab,
            variant.train.max_grad_norm,
            request.divergence_factor,
        )
        rows.append(dict(row, config=to_dict(variant.model)))
        histories.setdefault(family, {})[ablation] = loss_points(history)
        write_ablation_report(
            rows, histories, out
        )  # after every variant, so a long sweep can be watched or resumed by hand
    print(markdown_table(rows), end="")
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.json'} and {out / 'ablation.png'}")
    return rows


__all__ = ["AblateRequest", "run_ablation", "train_variant"]
