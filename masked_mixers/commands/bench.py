"""Speed benchmarks: `masked-mixers bench NAME [options]` (NAME below; `bench NAME --help` for its options).

Each benchmark measures its contenders side by side in one run, prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import importlib

from ..core.options import HelpFormatter

# benchmark name -> (module in masked_mixers.bench, one line of summary). New benchmarks add one line.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "train": ("train", "training tokens/s, MFU against a measured matmul peak, and peak memory, across L and d_model"),
    "generate": ("generate", "generation speed: cached mixer vs full-window recompute vs Llama's KV cache"),
    "linear": ("linear", "generation speed: deep linear mixer vs its collapsed one-layer form"),
    "serve": ("serve", "a bounded load test of the server: continuous vs static batching, throughput and latency"),
    "prepare": (
        "prepare",
        "data preparation tokens/s against the tokenizer's encode_batch, and bytes per token on disk",
    ),
}


def _module(name: str):
    return importlib.import_module(f"masked_mixers.bench.{BENCHMARKS[name][0]}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, (_, summary) in BENCHMARKS.items():
        module = _module(name)
        p = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
        module.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..core.devices import check_device
    from ..core.files import check_output_file

    if getattr(args, "device", None):
        check_device(args.device)
    for name in ("json_out", "output", "out"):  # whichever output file the benchmark takes, refused before it runs
        if isinstance(getattr(args, name, None), str):
            check_output_file(getattr(args, name))
    return _module(args.benchmark).run(args)
