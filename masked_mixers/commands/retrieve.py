"""Retrieval benchmark of a masked mixer against a transformer, with BM25 for reference.

Runs the same pipeline on both language models over the pairs of PAIRS_DIR (train.jsonl,
test.jsonl, as written by `masked-mixers pairs`) and writes retrieval.json and retrieval.png
(top-1 accuracy against the number of candidate passages) into --out.

Methods (--methods): cosine (the LM's embeddings as they are), direct (the paper's retrieval
mixer trained on frozen embeddings, at each --direct-candidates), infonce (the LM fine-tuned
with InfoNCE on the train pairs, then cosine).

Example:
  masked-mixers retrieve --mixer runs/mixer --transformer runs/llama --pairs pairs/stories --out results/retrieval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import atomic_write_text
from ..retrieval.benchmark import METHODS, format_table, plot_benchmark, retrieval_benchmark
from ..retrieval.embedding import POSITIONS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mixer", required=True, help="masked mixer model directory")
    parser.add_argument("--transformer", required=True, help="transformer model directory")
    parser.add_argument("--pairs", required=True, help="directory with train.jsonl and test.jsonl")
    parser.add_argument("--out", required=True, help="directory for retrieval.json and retrieval.png")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["cosine", "direct"])
    parser.add_argument("--candidates", type=int, nargs="+", default=None, help="numbers of candidates (default 32, 64, ... up to the test pairs)")
    parser.add_argument("--position", choices=POSITIONS, default="second-to-last")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--direct-candidates", type=int, nargs="+", default=[32])
    parser.add_argument("--direct-epochs", type=int, default=20)
    parser.add_argument("--direct-layers", type=int, default=4)
    parser.add_argument("--infonce-steps", type=int, default=200)
    parser.add_argument("--infonce-batch-size", type=int, default=32)
    parser.add_argument("--infonce-learning-rate", type=float, default=1e-4)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    options = {k: getattr(args, k) for k in (
        "position", "batch_size", "max_length", "direct_epochs", "direct_layers", "infonce_steps",
        "infonce_batch_size", "infonce_learning_rate", "temperature", "device",
    )}
    result = retrieval_benchmark(
        args.mixer, args.transformer, args.pairs, candidates=args.candidates, seed=args.seed,
        methods=tuple(args.methods), direct_candidates=tuple(args.direct_candidates), **options,
    )
    out = Path(args.out)
    atomic_write_text(out / "retrieval.json", json.dumps(result, indent=2) + "\n")
    plot_benchmark(result, out / "retrieval.png")
    print(format_table(result))
    print(f"wrote {out / 'retrieval.json'} and {out / 'retrieval.png'}")
    return 0
