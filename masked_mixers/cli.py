"""The `masked-mixers` command: one dispatch table, one module per command.

Each entry of COMMANDS names a module in `masked_mixers.commands`; that module has
`add_arguments(parser)` and `run(args) -> int`, and its docstring becomes the command's --help.
Modules are imported only when their command runs, so `masked-mixers --help` stays fast.

A `UserError` (bad file, key or value) prints one line and exits 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

# command name -> module in masked_mixers.commands, one line of summary
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("compare", "train masked mixers and transformers side by side on the same tokens; write a report"),
    "prepare": ("prepare", "tokenize a corpus into cached fixed-length examples"),
    "train": ("train", "train one model from a run config"),
    "eval": ("evaluate", "held-out metrics of a trained model (loss, perplexity, bits per byte; reconstruction for autoencoders)"),
    "generate": ("generate", "sample text from a trained model"),
    "push": ("push", "publish a run as a self-contained Hugging Face model with a model card (hub or local folder)"),
    "represent": ("represent", "how much of its input a model keeps: invert hidden states back to tokens"),
    "ablate": ("ablate", "train without layer norms, residuals or feed-forward and detect divergence"),
    "bench": ("bench", "benchmarks: `bench train` (tokens/s, MFU, memory), `bench generate`, `bench linear` (decoding speed)"),
    "pairs": ("pairs", "build (query, passage) retrieval pairs and split them"),
    "embed": ("embed", "embed texts with a trained model's hidden state (safetensors)"),
    "retrieve": ("retrieve", "retrieval benchmark: mixer vs transformer vs BM25"),
}


def _module(name: str):
    return importlib.import_module(f"masked_mixers.commands.{COMMANDS[name][0]}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masked-mixers",
        description="Train, evaluate, compare and serve masked mixer language models next to Llama transformers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        if command == name:  # only the chosen command's module is imported
            module = _module(name)
            p = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
            module.add_arguments(p)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_module(args.command).run(args) or 0)
    except UserError as err:
        print(f"masked-mixers {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"masked-mixers {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
