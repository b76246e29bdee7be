r"""Train masked mixers and transformers on the same tokens for the same budget, and report.

Examples:
  masked-mixers compare configs/compare-cpu.yaml --data train-lowercase.jsonl --eval-data valid-lowercase.jsonl
  masked-mixers compare configs/compare-paper-memory.yaml --output-dir runs/paper-memory
  masked-mixers compare configs/compare-cpu.yaml --set train.max_seconds=120 --set size_matching=memory
  masked-mixers compare configs/compare-autoencoder-cpu.yaml \
      --data train-lowercase.jsonl --eval-data valid-lowercase.jsonl

The config lists `models` (any number, any mix of families, d_model and seq_len) beside shared
`data` and `train` sections; see configs/compare-*.yaml. The families set the task: language
models are compared by next-token loss and text samples, autoencoders (mixer_autoencoder,
llama_autoencoder) by reconstruction loss, token accuracy, exact match and reconstructions; one
config holds one task. The output directory receives
report.md, results.json, eval_loss_vs_time.png, eval_loss_vs_tokens.png and models/<label>/.
With `retrieval: {enabled: true}` (configs/compare-retrieval-*.yaml) the trained models are also
benchmarked as text embedders on held-out pairs beside BM25: retrieval.png, retrieval-pairs/ and
a Retrieval section in the report (docs/retrieval.md).
"""

from __future__ import annotations

import argparse
import os

from ..core.options import add_no_progress, add_output, add_overrides, hide_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="compare config YAML (models: a list)")
    parser.add_argument("--data", help="training corpus: local file or hub dataset id (replaces data.source)")
    parser.add_argument("--eval-data", help="held-out corpus: local file or hub dataset id (replaces data.eval_source)")
    add_output(parser, folder=True, help="where the report goes (default: train.output_dir of the config)")
    add_overrides(parser, help="override a config key, e.g. train.max_steps=50")
    add_no_progress(parser)


def run(args: argparse.Namespace) -> int:
    hide_progress(args)
    from ..compare import run_compare
    from ..compare.config import load_compare_config
    from ..core.files import check_output_dir

    config = load_compare_config(args.config, args.overrides)
    if args.data:
        config.data.source = args.data
    if args.eval_data:
        config.data.eval_source = args.eval_data
    output_dir = os.path.expanduser(args.output_dir or config.train.output_dir)
    check_output_dir(output_dir)
    result = run_compare(config, output_dir, progress=not args.no_progress)
    best = min((r for r in result.rows if r["eval_loss"] is not None), key=lambda r: r["eval_loss"], default=None)
    lead = f"; lowest eval loss: {best['label']} ({best['eval_loss']:.4f})" if best else ""
    print(f"compare: {len(result.rows)} models trained{lead} -> report: {result.report}")
    return 0
