"""Content-addressed cache directories that are either complete or absent.

A prepared dataset lives in a directory named by a fingerprint of everything that made it.
It is built in a hidden temporary sibling and renamed into place as the last step, so a crash,
an error or a second process never leaves (or sees) a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def fingerprint(inputs: dict) -> str:
    """A short stable hash of JSON-able `inputs` (key order does not matter)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slug(text: str, limit: int = 40) -> str:
    """A readable, filesystem-safe fragment for directory names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:limit] or "data"


def publish(final: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and rename tmp_dir to `final`; remove it if anything fails.

    If another process published `final` first, its copy wins and ours is discarded.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
