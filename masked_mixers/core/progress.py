"""One switch for every progress bar this package draws.

`--no-progress` (options.hide_progress) sets tqdm's own TQDM_DISABLE, but tqdm reads that variable
once, when it is imported, and a bar given `disable=False` ignores it anyway. So the package's
bars go through `progress_bar`, which checks the switch each time a bar is made; the Trainer's
bars follow `TrainingArguments.disable_tqdm`, and transformers' and datasets' own bars are turned
off through their logging utilities (options.hide_progress).
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def progress_hidden() -> bool:
    """Whether progress bars are off: `--no-progress` (options.hide_progress), or TQDM_DISABLE set by the user."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def progress_bar(*args: Any, disable: bool = False, **kwargs: Any) -> tqdm:
    """tqdm, hidden when the caller says so or when progress bars are off for the whole run."""
    return tqdm(*args, disable=disable or progress_hidden(), **kwargs)


__all__ = ["progress_bar", "progress_hidden"]
