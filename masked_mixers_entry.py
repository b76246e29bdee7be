"""The `masked-mixers` console script: answers `--help` and `--version` without importing the package.

`import masked_mixers` imports torch, transformers and every model family, because importing the
package is what registers its model types with transformers' Auto classes (users rely on
`import masked_mixers; AutoModelForCausalLM.from_pretrained(run_dir)`); that costs seconds of
CPU. A package's `__init__` always runs before any of its modules, so the only way for
`masked-mixers --help` to stay fast (well under a second) is an entry module outside the package:
this one, standard library only at import. It holds the command table, the top-level parser and the
dispatch: as soon as a command is named it imports that command's module (`masked_mixers.commands.X`,
which has `add_arguments(parser)` and `run(args) -> int`; its docstring becomes the command's --help),
builds its parser and runs it. `masked_mixers.cli` is this module under the package's name, for
`python -m masked_mixers.cli` (torchrun, accelerate launch); the import goes one way only (cli -> here).

A `UserError` (bad file, key or value) prints one line and exits 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys

PROG = "masked-mixers"
DESCRIPTION = "Train, evaluate, compare and serve masked mixer language models next to Llama transformers."

# command name -> (module in masked_mixers.commands, one line of summary). New commands add one line.
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("compare", "train masked mixers and transformers side by side on the same tokens; write a report"),
    "prepare": ("prepare", "tokenize a corpus into cached fixed-length examples"),
    "train": ("train", "train one model from a run config"),
    "eval": (
        "evaluate",
        "held-out metrics of a trained model (loss, perplexity, bits per byte; reconstruction for autoencoders)",
    ),
    "generate": ("generate", "sample text from a trained model"),
    "push": ("push", "publish a run as a self-contained Hugging Face model with a model card (hub or local folder)"),
    "lm-eval": (
        "lmeval",
        "run lm-evaluation-harness tasks on a trained model (loglikelihood, rolling, generate_until)",
    ),
    "serve": ("serve", "HTTP server with an OpenAI-compatible /v1/completions endpoint (streaming or not)"),
    "represent": ("represent", "how much of its input a model keeps: invert hidden states back to tokens"),
    "ablate": ("ablate", "train without layer norms, residuals or feed-forward and detect divergence"),
    "reproduce": ("reproduce", "run the paper's findings (F1-F7) with its protocols and write one scorecard"),
    "bench": (
        "bench",
        "benchmarks: `bench train` (tokens/s, MFU, memory), `bench generate`, `bench linear` (decoding speed), "
        "`bench prepare`",
    ),
    "scaling": ("scaling", "isoFLOP scaling analysis of a sweep: frontiers, exponents, crossover, with intervals"),
    "pairs": ("pairs", "build (query, passage) retrieval pairs and split them"),
    "embed": ("embed", "embed texts with a trained model's hidden state (safetensors)"),
    "retrieve": ("retrieve", "retrieval benchmark: mixer vs transformer vs BM25"),
    "sweep": (
        "sweep",
        "train a grid of runs (families, sizes, L, rates, budgets) locally or on SLURM; resumable",
    ),
}


def version() -> str:
    """The installed distribution's version (pyproject.toml), read from its metadata."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as distribution_version

    try:
        return distribution_version("masked-mixers")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """`--version`, reading the version only when asked (importlib.metadata is not free)."""

    def __init__(
        self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="print the version and exit"
    ):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG} {version()}")
        parser.exit()


def top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser of `masked-mixers` itself and its (still empty) command subparsers."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=f"`{PROG} COMMAND --help` explains each command."
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, sub


def requested_command(argv: list[str]) -> str | None:
    """The command named on the command line, if it is one of COMMANDS (options before it are top-level)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return command if command in COMMANDS else None


def _module(name: str):
    import importlib

    return importlib.import_module(
        f"masked_mixers.commands.{COMMANDS[name][0]}"
    )  # the package (torch, models) only now


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only `command`'s module is imported, the others appear with their summary."""
    parser, sub = top_parser()
    for name, (_, summary) in COMMANDS.items():
        if command == name:
            module = _module(name)
            from masked_mixers.core.options import HelpFormatter

            p = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
            module.add_arguments(p)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(requested_command(argv))
    args = parser.parse_args(argv)  # --help, --version or an unknown command exit here
    if args.command is None:
        parser.print_help()
        return 2
    module = _module(args.command)
    from masked_mixers.core.errors import UserError

    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
