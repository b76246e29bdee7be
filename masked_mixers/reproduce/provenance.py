"""Where a finding came from: the package version, the git revision, a hash of the code and of its config.

`reproduce` records all four per finding and reuses a saved finding only when the version, the code
hash and the config hash are unchanged (runner.py); the revision is the one `compare` reports name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path

from ..compare.report import _git_revision as git_revision  # one definition, shared with compare reports

PACKAGE = Path(__file__).resolve().parents[1]  # the masked_mixers folder this code runs from


def package_version() -> str:
    """`masked_mixers.__version__` of the package running (the root package is loaded before any of its modules)."""
    return sys.modules[__name__.split(".")[0]].__version__


def code_sha256(root: Path | None = None) -> str:
    """sha256 over every .py file under `root` (default: this package, hashed once per process), sorted by relative
    path: each path, a NUL, its bytes, a NUL."""
    return _package_sha256() if root is None else _tree_sha256(Path(root))


@functools.cache
def _package_sha256() -> str:
    return _tree_sha256(PACKAGE)


def _tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def config_sha256(config) -> str:
    """sha256 of a JSON-able config, keys sorted (so the order fields were written in does not count)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


__all__ = ["code_sha256", "config_sha256", "git_revision", "package_version"]
