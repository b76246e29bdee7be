"""Architecture flexibility (Badger, arXiv 2409.01482): train without layer norms, residuals or feed-forward.

For each family (mixer, llama) the run config's model is trained unablated and with one part
removed at a time, every variant for the same budget (the config's train section) on the same
prepared data. A run diverged if its training loss became NaN/inf (training stops there and the
sweep goes on to the next variant) or stayed above --rise-factor times its running minimum for
--patience logged points; the table reports that step, or the final loss. Llama variants are
built from transformers' own Llama modules (family "llama_ablated").

Writes into --out: one training directory per variant, ablation.md, ablation.json, ablation.png.

  masked-mixers ablate configs/small.yaml --set train.max_steps=300 --out runs/ablate
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..config import RunConfig, load_run_config, to_dict
from ..factory import build_model, count_parameters
from ..files import atomic_write_text
from ..probes.ablation import ABLATABLE_FAMILIES, ABLATIONS, ablation_runs, loss_points, markdown_table, summarize_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML: model sizes, data and the training budget every variant gets")
    parser.add_argument("--families", nargs="+", default=list(ABLATABLE_FAMILIES), choices=list(ABLATABLE_FAMILIES))
    parser.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    parser.add_argument("--rise-factor", type=float, default=1.5, help="diverged: loss above this times its running minimum ...")
    parser.add_argument("--patience", type=int, default=3, help="... for this many logged points in a row")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--out", default="runs/ablate", help="output directory")


def write_report(rows: list[dict], histories: dict, out: Path) -> None:
    """ablation.md, ablation.json (rows + loss histories) and ablation.png (loss curves, divergence marked)."""
    from ..probes.plotting import plot_loss_histories

    atomic_write_text(out / "ablation.md", markdown_table(rows))
    curves = {f: {a: [(s, v if math.isfinite(v) else None) for s, v in pts] for a, pts in runs.items()} for f, runs in histories.items()}
    atomic_write_text(out / "ablation.json", json.dumps(dict(rows=rows, loss_histories=curves), indent=1))
    marks = {row["family"]: {} for row in rows}
    for row in rows:
        marks[row["family"]][row["ablation"]] = row["diverged_at"]
    plot_loss_histories(histories, out / "ablation.png", marks)


def train_variant(variant: RunConfig, prepared) -> tuple[list[dict], dict, int]:
    """(loss history, eval metrics, parameter count) of one variant.

    A NaN/inf loss stops that run (train.on_nonfinite "stop"); its history is what metrics.jsonl
    logged up to then, plus a NaN point at the step that failed, so the sweep records it and goes on.
    """
    from ..trainer import NonFiniteLoss
    from ..rundir import read_metrics
    from ..training import train

    try:
        result = train(variant, prepared)
    except NonFiniteLoss as err:
        print(f"  {err}")
        history = read_metrics(variant.train.output_dir)
        model, _ = build_model(variant.model, len(prepared.tokenizer))
        return history + [dict(step=err.step, loss=math.nan)], {}, count_parameters(model).total
    return result.history, result.eval_metrics, count_parameters(result.model).total


def run(args) -> int:
    from ..data import prepare_data

    run_config = load_run_config(args.config, args.overrides)
    out = Path(args.out)
    variants = ablation_runs(run_config, args.families, args.ablations, out)
    prepared = prepare_data(run_config.data, run_config.model.seq_len)  # one tokenization shared by every variant
    rows, histories = [], {}
    for i, (family, ablation, variant) in enumerate(variants, 1):
        print(f"[{i}/{len(variants)}] {family} {ablation}: training into {variant.train.output_dir}")
        history, eval_metrics, parameters = train_variant(variant, prepared)
        row = summarize_run(family, ablation, history, eval_metrics, parameters, rise_factor=args.rise_factor, patience=args.patience)
        rows.append(dict(row, config=to_dict(variant.model)))
        histories.setdefault(family, {})[ablation] = loss_points(history)
        write_report(rows, histories, out)  # after every variant, so a long sweep can be watched or resumed by hand
    print(markdown_table(rows), end="")
    print(f"wrote {out / 'ablation.md'}, {out / 'ablation.json'} and {out / 'ablation.png'}")
    return 0
