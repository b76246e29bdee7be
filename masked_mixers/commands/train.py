r"""Train one model from a run config (YAML with model, data and train sections).

Examples:
  masked-mixers train configs/tinystories-cpu-mixer.yaml
  masked-mixers train configs/tinystories-cpu-llama.yaml --set train.max_steps=200 --set train.output_dir=runs/llama
  masked-mixers train configs/autoencoder-cpu-mixer.yaml \
      --set data.source=train.jsonl --set data.eval_source=valid.jsonl
  torchrun --nproc_per_node=2 -m masked_mixers.cli train configs/tinystories-cpu-mixer.yaml
  accelerate launch --multi_gpu --num_processes 2 -m masked_mixers.cli train configs/tinystories-cpu-mixer.yaml
  (both start 2 processes, on GPUs or, without CUDA, on the CPU over gloo; accelerate needs --multi_gpu for
  that even on a CPU: without it, it starts 1 process, and train warns. Multi-node and FSDP: docs/distributed.md)

A run resumes from the newest checkpoint in train.output_dir unless --no-resume is given. The
folder must be new, empty or a run folder of this toolkit (OUTPUT_DIR/.masked-mixers.json lists what
it wrote); a folder holding anything else, a checkpoint or a folder inside another run is refused.
Metrics go to OUTPUT_DIR/metrics.jsonl; the model and its tokenizer to OUTPUT_DIR. The model's
family sets what it is scored on: next-token loss for language models, reconstruction loss,
token accuracy and exact match for autoencoders.

Logging: train.report_to lists the Trainer's loggers beside metrics.jsonl (always written), e.g.
--set 'train.report_to=[tensorboard]' (pip install "masked-mixers[tensorboard]"; then
`tensorboard --logdir OUTPUT_DIR/runs`) or [wandb] (pip install wandb; WANDB_PROJECT names the project).
"""

from __future__ import annotations

import argparse
import os

from ..core.options import add_output, add_overrides
from ..runs.config import load_run_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="run config YAML")
    add_overrides(parser, help="override a config key, e.g. train.max_steps=100")
    add_output(
        parser,
        folder=True,
        help="where the model, tokenizer, metrics and checkpoints go (shortcut for --set train.output_dir=DIR)",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="start from scratch: the earlier run's checkpoints, metrics and model in the folder are removed "
        "(only what the run wrote)",
    )


def run(args: argparse.Namespace) -> int:
    from ..training.tasks import describe_metrics, model_task
    from ..training.train import train

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"train.output_dir={args.output_dir}")
    config = load_run_config(args.config, overrides)
    result = train(config, resume=not args.no_resume)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun / accelerate launch, rank 0 reports
        return 0
    if result.already_finished:
        print(
            f"{result.output_dir}: already finished ({result.steps} steps, train loss {result.train_loss:.4f}); "
            "nothing changed (--no-resume trains it again)"
        )
        return 0
    ev = result.eval_metrics
    processes = f" on {result.processes} processes" if result.processes > 1 else ""
    summary = f"{config.model.label}: {result.steps} steps{processes}, train loss {result.train_loss:.4f}"
    if ev:
        summary += ", " + describe_metrics(ev, model_task(result.model))
    flops = f", {result.flops:.3g} training FLOPs" if result.flops is not None else ""
    print(
        f"{summary}, {result.tokens_per_second:,.0f} tokens/s; stopped by {result.stopped_by}{flops}, "
        f"CPU time {result.cpu_seconds:.0f} s -> {result.output_dir}"
    )
    return 0
