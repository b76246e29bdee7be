"""The `masked-mixers` command line under the package's name: `python -m masked_mixers.cli ...`.

torchrun and `accelerate launch` start a module, so the command line must be one inside the package;
its dispatch table, parser and error handling live in `masked_mixers_entry` (outside the package, so
that `masked-mixers --help` never imports torch). The import goes one way: this module imports that one.
"""

from __future__ import annotations

import sys

from masked_mixers_entry import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
