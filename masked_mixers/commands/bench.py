"""Benchmarks: `masked-mixers bench SUBCOMMAND ...` (see `masked-mixers bench SUBCOMMAND --help`).

Benchmarks are commands, not timed tests: they measure on the machine at hand and print the
medians and ratios of runs made side by side.
"""

from __future__ import annotations

import argparse
import importlib

# subcommand -> module in masked_mixers.bench, one line of summary
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "training tokens/s, MFU against a measured matmul peak, and peak memory, across L and d_model"),
}


def _module(name: str):
    return importlib.import_module(f"masked_mixers.bench.{SUBCOMMANDS[name][0]}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (_, summary) in SUBCOMMANDS.items():
        module = _module(name)
        p = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return _module(args.bench).run(args)
