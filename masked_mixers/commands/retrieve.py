r"""Retrieval benchmark of a masked mixer against a transformer, with BM25 for reference.

Runs the same pipeline on both language models over the pairs of PAIRS_DIR (train.jsonl,
test.jsonl, as written by `masked-mixers pairs`) and writes retrieval.json and retrieval.png
(top-1 accuracy against the number of candidate passages) into --output-dir.

Methods (--methods): cosine (the LM's embeddings as they are), direct (the paper's retrieval
mixer trained on frozen embeddings, at each --direct-candidates), infonce (the LM fine-tuned
with InfoNCE on the train pairs, then cosine).

Example:
  masked-mixers retrieve --mixer runs/mixer --transformer runs/llama --pairs pairs/stories \
      --output-dir results/retrieval
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.devices import check_device
from ..core.files import atomic_write_json, check_output_dir
from ..core.options import add_device, add_output, add_trust_remote_code
from ..retrieval.settings import BENCHMARK_FIELDS, add_options, from_args
from ..runs.rundir import load_model_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mixer", required=True, help="masked mixer model directory")
    parser.add_argument("--transformer", required=True, help="transformer model directory")
    parser.add_argument("--pairs", required=True, help="directory with train.jsonl and test.jsonl")
    add_output(
        parser,
        folder=True,
        dest="out",
        old=("--out",),
        required=True,
        help="directory for retrieval.json and retrieval.png",
    )
    add_options(parser, BENCHMARK_FIELDS)  # --methods, --candidates, --position, ... (retrieval/settings.py)
    add_device(parser, "the models (and the trained retrievers)")
    add_trust_remote_code(parser)


def run(args: argparse.Namespace) -> int:
    from ..core.devices import resolve_device
    from ..retrieval.benchmark import format_table, plot_benchmark, retrieval_benchmark
    from ..retrieval.f5 import direct_table_of_models

    settings = from_args(args, BENCHMARK_FIELDS)
    check_output_dir(args.out)
    check_device(args.device)
    for model_dir in (args.mixer, args.transformer):
        load_model_config(model_dir, args.trust_remote_code)  # both folders checked before any work
    result = retrieval_benchmark(
        args.mixer,
        args.transformer,
        args.pairs,
        settings,
        device=str(resolve_device(args.device)),
        trust_remote_code=args.trust_remote_code,
    )
    out = Path(args.out)
    atomic_write_json(out / "retrieval.json", result)
    plot_benchmark(result, out / "retrieval.png")
    print(format_table(result))
    direct = direct_table_of_models(result["models"])
    if direct:
        print(f"\ndirect retrieval model (train and test cross entropy, chance ln n):\n{direct}")
    print(f"wrote {out / 'retrieval.json'} and {out / 'retrieval.png'}")
    return 0
