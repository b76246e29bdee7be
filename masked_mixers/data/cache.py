"""Content-addressed cache directories that are either complete or absent.

A prepared dataset lives in a directory named by a fingerprint of everything that made it.
It is built in a hidden sibling and renamed into place as the last step, so a crash, an error or
a second process never leaves (or sees) a half-written one. `publish` builds in a fresh
temporary sibling; a resumable build (prepare_data) keeps its finished parts in a fixed sibling
(`work_dir`) under a lock, so a rerun after a kill continues it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.files import share_like_umask


def fingerprint(inputs: dict) -> str:
    """A short stable hash of JSON-able `inputs` (key order does not matter)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def slug(text: str, limit: int = 40) -> str:
    """A readable, filesystem-safe fragment for directory names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:limit] or "data"


def _owner_prefix(final: Path) -> str:
    """Temporary builds are named after the host and process that make them, so a later run can
    tell the leftovers of a killed build (process gone) from a build still running."""
    return f".{final.name}.{socket.gethostname()}.{os.getpid()}."


def remove_dead_builds(parent: Path) -> None:
    """Delete temporary builds left by killed processes of this host (never another host's)."""
    host = socket.gethostname()
    for entry in parent.glob(".*.tmp"):
        parts = entry.name[: -len(".tmp")].rsplit(".", 2)  # .NAME.HOST, PID, random part of mkdtemp
        if len(parts) < 3 or not parts[0].endswith(f".{host}") or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass  # alive, owned by another user


def publish(final: Path, build: Callable[[Path], None]) -> Path:
    """Run `build(tmp_dir)` and rename tmp_dir to `final`; remove it if anything fails.

    If another process published `final` first, its copy wins and ours is discarded. Leftovers of
    builds whose process was killed are removed first; the entry gets the umask's permissions.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_builds(final.parent)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=_owner_prefix(final), suffix=".tmp"))
    try:
        build(tmp)
        share_like_umask(tmp)  # mkdtemp makes 0700: a cache shared between users needs the umask's modes
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


def work_dir(final: Path) -> Path:
    """Where a resumable build of `final` keeps its finished parts between runs."""
    return final.parent / f".{final.name}.partial"


@contextmanager
def build_lock(final: Path) -> Iterator[Path]:
    """Hold an exclusive lock on building `final`: a second process waits, then finds it built.

    The lock file lives in a `locks` folder beside final's parent, never among the caches.
    """
    lock = final.parent.parent / "locks" / f"{final.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish_work(work: Path, final: Path) -> Path:
    """Rename a finished work directory to `final` (a build already there wins), with the umask's modes."""
    share_like_umask(work)
    if final.is_dir():
        shutil.rmtree(work)
    else:
        os.rename(work, final)
    return final


def discard(work: Path, lock: Path, root: Path) -> None:
    """Remove a failed build's work and lock, then the folders it created if they are empty,
    up to and including the cache root: bad input leaves no trace."""
    shutil.rmtree(work, ignore_errors=True)
    lock.unlink(missing_ok=True)
    for folder in (lock.parent, work.parent, root):
        try:
            folder.rmdir()
        except OSError:  # not empty (other caches) or already gone
            pass
