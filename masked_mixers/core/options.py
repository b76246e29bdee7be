"""Command-line building blocks every command shares, so that one idea has one spelling.

- `HelpFormatter`: keeps the hand-wrapped descriptions (examples) and shows each option's default.
- `add_output(parser, ...)`: `--output FILE` for a file, `--output-dir DIR` for a folder, in every
  command; the spellings used before (`--out`, `--json`) still work as hidden, deprecated aliases
  (a note on stderr), so scripts and old notes keep running.
- `add_no_progress(parser)` / `hide_progress(args)`: `--no-progress` hides every progress bar,
  the Trainer's and the libraries' too (`progress.progress_bar` draws this package's).
- `add_device(parser)`: `--device auto|cpu|cuda|cuda:N|mps` wherever a model runs; `devices.py`
  resolves it when the command runs (importing torch here would slow every `--help`).

Standard library only: command parsers are built for `--help` too.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def _says_nothing(default: Any) -> bool:
    """An unset option (its help says what unset means), an off flag, or no items: not worth printing."""
    return default is None or default is False or (isinstance(default, (list, tuple)) and not default)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written; `(default: X)` after every option help that has a meaningful default.

    Deprecated aliases (`deprecated_aliases` on an action, see add_output) are left out of the help.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        if _says_nothing(action.default):
            return action.help or ""
        return super()._get_help_string(action)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "deprecated_aliases", ())
        if not hidden:
            return super()._format_action_invocation(action)
        shown = argparse.Action(
            [s for s in action.option_strings if s not in hidden],
            action.dest,
            nargs=action.nargs,
            metavar=action.metavar,
        )
        return super()._format_action_invocation(shown)


class _StoreWithAliases(argparse._StoreAction):
    """A store action whose old spellings print a deprecation note when used."""

    deprecated_aliases: tuple[str, ...] = ()

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.deprecated_aliases:
            print(f"{parser.prog}: note: {option_string} is deprecated, use {self.option_strings[0]}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_output(
    parser: argparse.ArgumentParser,
    *,
    folder: bool,
    help: str,
    dest: str | None = None,
    old: tuple[str, ...] = (),
    **kwargs: Any,
) -> argparse.Action:
    """`--output-dir DIR` (folder=True) or `--output FILE`; `old` spellings stay accepted, hidden and deprecated."""
    name = "--output-dir" if folder else "--output"
    action = parser.add_argument(
        name,
        *old,
        dest=dest or name[2:].replace("-", "_"),
        metavar="DIR" if folder else "FILE",
        action=_StoreWithAliases,
        help=help,
        **kwargs,
    )
    action.deprecated_aliases = tuple(old)
    return action


def add_overrides(parser: argparse.ArgumentParser, help: str) -> None:
    """`--set KEY=VALUE` (repeatable): config keys overridden on the command line, collected in args.overrides."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_device(parser: argparse.ArgumentParser, what: str = "the model") -> None:
    """`--device`: where `what` runs; `auto` is CUDA when available, else Apple's MPS, else the CPU."""
    parser.add_argument(
        "--device",
        default="auto",
        help=f"where {what} runs: auto, cpu, cuda, cuda:N or mps (auto: cuda if available, then mps, then cpu)",
    )


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    """`--no-progress`; the command calls `hide_progress(args)` before it starts work."""
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (the Trainer's included), e.g. for log files"
    )


def hide_progress(args: argparse.Namespace) -> None:
    """Honour `--no-progress` for every bar, not only this package's: tqdm's own switch
    (TQDM_DISABLE, read by `progress.progress_hidden()` for this package's bars and the Trainer's) and the
    progress switches of transformers (loading and saving weights) and datasets (map, filter)."""
    if getattr(args, "no_progress", False):
        os.environ["TQDM_DISABLE"] = "1"
        import datasets
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        datasets.disable_progress_bars()


def add_trust_remote_code(parser: argparse.ArgumentParser) -> None:
    """`--trust-remote-code`: off by default, so a model folder is data and none of its Python code runs."""
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model folder's own Python code to run (off: a model folder is data)",
    )


__all__ = ["HelpFormatter", "add_device", "add_no_progress", "add_output", "add_trust_remote_code", "hide_progress"]
