"""The `masked-mixers` command: one dispatch table, one module per command.

The table (COMMANDS) and the top-level parser live in `masked_mixers_entry` (outside the package,
so that `masked-mixers --help` and `--version` never import torch); this module builds the named
command's parser and runs it. Each entry of COMMANDS names a module in `masked_mixers.commands`;
that module has `add_arguments(parser)` and `run(args) -> int`, and its docstring becomes the
command's --help. Modules are imported only when their command runs.

`python -m masked_mixers.cli` (torchrun, accelerate launch) and `python -m masked_mixers` run this.
A `UserError` (bad file, key or value) prints one line and exits 2; nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from masked_mixers_entry import COMMANDS, requested_command, top_parser

from .core.errors import UserError
from .core.options import HelpFormatter


def _module(name: str):
    return importlib.import_module(f"masked_mixers.commands.{COMMANDS[name][0]}")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only `command`'s module is imported, the others appear with their summary."""
    parser, sub = top_parser()
    for name, (_, summary) in COMMANDS.items():
        if command == name:
            module = _module(name)
            p = sub.add_parser(name, help=summary, description=module.__doc__, formatter_class=HelpFormatter)
            module.add_arguments(p)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(requested_command(argv))
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
