"""Writing files so that a reader never sees half of one: the one home of atomic writes.

Every output of this package (configs, summaries, reports, figures, embeddings) may be read by
another process while it is written (a resumed run, a report built from a live run) or be cut
short by a kill. Each writer here writes a temporary file in the destination's folder (so the
rename stays within one filesystem) and renames it over the destination: readers see the old
file or the whole new one. The file ends with the normal permissions (0666 less the umask),
not the 0600 of `tempfile.mkstemp`.

A destination that is a symlink is written through (the link stays a link and its target gets the
new bytes), and one that is a device or a pipe (/dev/stdout, /dev/full, a FIFO) is written in place,
never replaced by a regular file. Any OS failure (no space, read-only, a file where a folder must
be) is one `UserError` naming the path, with the temporary file removed: nothing half written.
`check_output_file` and `check_output_dir` let a command refuse a bad destination before its work.

Imports of matplotlib and safetensors are deferred to the functions that need them, so that
modules which only write text stay light.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError, reason


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cannot_write(path: str | os.PathLike, err: OSError) -> UserError:
    return UserError(f"{path}: cannot write ({err.strerror or err})")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: str | os.PathLike, target: Path) -> None:
    """`target` does not exist: its nearest existing ancestor must be a writable folder."""
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise UserError(f"{path}: cannot write: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{path}: cannot write: folder {ancestor} is not writable")


def check_output_file(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a file destination that cannot be written; returns the path written to."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UserError(f"{path}: is a folder; expected a file name")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise UserError(f"{path}: cannot write: the file is not writable")
    else:
        _check_creatable(path, target)
    return target


def check_output_dir(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a folder destination that is a file or not writable (nothing is created)."""
    target = Path(os.path.realpath(path))
    if target.exists():
        if not target.is_dir():
            raise UserError(f"{path}: exists and is not a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise UserError(f"{path}: cannot write: the folder is not writable")
    else:
        _check_creatable(path, target)
    return target


def make_dir(path: str | os.PathLike) -> Path:
    """`mkdir -p` with the umask's permissions; a failure is one line naming `path`."""
    check_output_dir(path)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _cannot_write(path, err) from None
    return Path(path)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on failure it is removed.

    For writers that want a filename rather than bytes (matplotlib, safetensors). `suffix` lets
    a writer that picks its format from the extension (savefig) see the right one. A symlink is
    followed; a device or pipe is written in place (the temporary then lives in the system's
    temporary folder and is copied to it).
    """
    target = check_output_file(path)
    special = target.exists() and not target.is_file()
    folder = Path(tempfile.gettempdir()) if special else target.parent
    tmp = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=suffix)
        os.close(fd)
        yield Path(tmp)
        if special:
            with open(tmp, "rb") as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)
        else:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
            os.replace(tmp, target)
    except OSError as err:
        raise _cannot_write(path, err) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def share_like_umask(root: str | os.PathLike) -> None:
    """Give `root` and everything under it the permissions the umask asks for (0777/0666 less it).

    mkdtemp makes folders 0700 and some writers (transformers' weights, mkstemp) files 0600, so
    a cache or a model folder shared between users would be unreadable to the others.
    """
    mask = _umask()
    for folder, _, files in os.walk(root):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~mask)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` so that readers see the old file or the whole new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, **dumps: Any) -> None:
    """Write `obj` as JSON with a final newline, atomically; `dumps`: more `json.dumps` arguments (default=...)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, **dumps) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Any, **dumps: Any) -> None:
    """Write `records` as JSON lines (one object per line), atomically; `dumps` as for atomic_write_json."""
    atomic_write_text(path, "".join(json.dumps(record, **dumps) + "\n" for record in records))


def save_figure(fig, path: str | os.PathLike, **savefig: Any) -> None:
    """Save a matplotlib figure atomically (format from `path`'s extension), then close it.

    savefig: keyword arguments of `Figure.savefig` (dpi defaults to 120). The figure is closed
    even when saving fails, so a loop of plots never accumulates open figures.
    """
    import matplotlib.pyplot as plt

    savefig.setdefault("dpi", 120)
    try:
        with atomic_path(path, suffix=Path(path).suffix or ".png") as tmp:
            fig.savefig(tmp, **savefig)
    finally:
        plt.close(fig)


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Write named tensors as a safetensors file, atomically; metadata values become strings."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(
                {k: v.contiguous() for k, v in tensors.items()},
                str(tmp),
                metadata={k: str(v) for k, v in (metadata or {}).items()},
            )
        except SafetensorError as err:  # not an OSError: "No space left on device" comes as safetensors' own type
            raise UserError(f"{path}: cannot write ({reason(err)})") from None


__all__ = [
    "atomic_path",
    "check_output_dir",
    "check_output_file",
    "make_dir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_jsonl",
    "atomic_write_text",
    "save_figure",
    "save_safetensors",
    "share_like_umask",
]
