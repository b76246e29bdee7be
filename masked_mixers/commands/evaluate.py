"""Held-out metrics of a trained model: loss, perplexity and bits per byte for language models;
reconstruction loss, token accuracy and exact match for autoencoders.

Examples:
  masked-mixers eval runs/mixer --data roneneldan/TinyStories --split validation
  masked-mixers eval runs/mixer --data valid-lowercase.jsonl --max-batches 20 --output eval.json

The data is tokenized with the model's own tokenizer, at the model's length, with the padding,
packing and lowercasing of the run that trained it (read from MODEL_DIR/run.yaml when present).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..core.devices import check_device
from ..core.errors import UserError
from ..core.files import atomic_write_json, check_output_file
from ..core.options import add_device, add_output, add_trust_remote_code
from ..runs.config import DataConfig, RunConfig, load_run_config
from ..runs.rundir import RUN_CONFIG, load_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", help="directory written by `masked-mixers train`")
    parser.add_argument("--data", help="corpus: hub dataset id or local file(s); default: the run's eval data")
    parser.add_argument("--split", default=None, help="hub split to evaluate (default: the run's eval_split)")
    parser.add_argument("--text-field", default=None, help="text field of .jsonl/.parquet/hub records")
    parser.add_argument("--max-documents", type=int, default=None, help="evaluate on the first N documents")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per forward pass")
    parser.add_argument(
        "--max-batches", type=int, default=None, help="stop after this many batches (default: the whole data)"
    )
    add_output(parser, folder=False, old=("--json",), help="also write the metrics to this JSON file")
    add_device(parser)
    add_trust_remote_code(parser)


def _data_config(args: argparse.Namespace) -> DataConfig:
    """The run's data settings, pointed at the data to evaluate and the model's own tokenizer."""
    run_yaml = Path(args.model_dir) / RUN_CONFIG
    run = load_run_config(run_yaml) if run_yaml.is_file() else RunConfig()
    data = run.data
    if args.data:
        data.eval_source = args.data
    if args.split:
        data.eval_split = args.split
    if args.text_field:
        data.text_field = args.text_field
    if args.max_documents:
        data.max_eval_documents = args.max_documents
    data.tokenizer = str(Path(args.model_dir).resolve())
    return data


def run(args: argparse.Namespace) -> int:
    from ..core.devices import resolve_device
    from ..data import prepare_eval_data
    from ..models import context_length
    from ..training.evaluation import evaluate

    if (
        args.batch_size < 1
        or (args.max_batches is not None and args.max_batches < 1)
        or (args.max_documents is not None and args.max_documents < 1)
    ):
        raise UserError(
            "--batch-size, --max-batches and --max-documents must be at least 1, "
            f"got {args.batch_size}, {args.max_batches}, {args.max_documents}"
        )
    if args.output:
        check_output_file(args.output)
    check_device(args.device)
    model, _ = load_run(args.model_dir, trust_remote_code=args.trust_remote_code)
    model.to(resolve_device(args.device))
    data = _data_config(args)
    dataset = prepare_eval_data(data, context_length(model))
    metrics = evaluate(model, dataset, batch_size=args.batch_size, max_batches=args.max_batches)
    metrics = {"model_dir": str(args.model_dir), **metrics}
    print(json.dumps(metrics, indent=2))
    if args.output:
        atomic_write_json(args.output, metrics)
    return 0
