"""The `masked-mixers` console script: answers `--help` and `--version` without importing the package.

`import masked_mixers` imports torch, transformers and every model family, because importing the
package is what registers its model types with transformers' Auto classes (users rely on
`import masked_mixers; AutoModelForCausalLM.from_pretrained(run_dir)`); that costs seconds of
CPU. A package's `__init__` always runs before any of its modules, so the only way for
`masked-mixers --help` to stay fast (well under a second) is an entry module outside the package:
this one, standard library only. It holds the command table and the top-level parser; as soon as a
command is named it hands over to `masked_mixers.cli`, which builds that command's parser and runs it.
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
    "eval": ("evaluate", "held-out metrics of a trained model (loss, perplexity, bits per byte; reconstruction for autoencoders)"),
    "generate": ("generate", "sample text from a trained model"),
    "push": ("push", "publish a run as a self-contained Hugging Face model with a model card (hub or local folder)"),
    "lm-eval": ("lmeval", "run lm-evaluation-harness tasks on a trained model (loglikelihood, rolling, generate_until)"),
    "serve": ("serve", "HTTP server with an OpenAI-compatible /v1/completions endpoint (streaming or not)"),
    "represent": ("represent", "how much of its input a model keeps: invert hidden states back to tokens"),
    "ablate": ("ablate", "train without layer norms, residuals or feed-forward and detect divergence"),
    "reproduce": ("reproduce", "run the paper's findings (F1-F7) with its protocols and write one scorecard"),
    "bench": ("bench", "benchmarks: `bench train` (tokens/s, MFU, memory), `bench generate`, `bench linear` (decoding speed), `bench prepare`"),
    "pairs": ("pairs", "build (query, passage) retrieval pairs and split them"),
    "embed": ("embed", "embed texts with a trained model's hidden state (safetensors)"),
    "retrieve": ("retrieve", "retrieval benchmark: mixer vs transformer vs BM25"),
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

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="print the version and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG} {version()}")
        parser.exit()


def top_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """The parser of `masked-mixers` itself and its (still empty) command subparsers."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=f"`{PROG} COMMAND --help` explains each command.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser, sub


def requested_command(argv: list[str]) -> str | None:
    """The command named on the command line, if it is one of COMMANDS (options before it are top-level)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return command if command in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if requested_command(argv) is not None:
        from masked_mixers.cli import main as run_command  # the package (torch, models) only now

        return run_command(argv)
    parser, sub = top_parser()
    for name, (_, summary) in COMMANDS.items():
        sub.add_parser(name, help=summary)
    parser.parse_args(argv)  # --help, --version or an unknown command exit here
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
