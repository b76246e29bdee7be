"""Writing files so that a reader never sees half of one: the one home of atomic writes.

Every output of this package (configs, summaries, reports, figures, embeddings) may be read by
another process while it is written (a resumed run, a report built from a live run) or be cut
short by a kill. Each writer here writes a temporary file in the destination's folder (so the
rename stays within one filesystem) and renames it over the destination: readers see the old
file or the whole new one. The file ends with the normal permissions (0666 less the umask),
not the 0600 of `tempfile.mkstemp`.

Imports of matplotlib and safetensors are deferred to the functions that need them, so that
modules which only write text stay light.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on failure it is removed.

    For writers that want a filename rather than bytes (matplotlib, safetensors). `suffix` lets
    a writer that picks its format from the extension (savefig) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` so that readers see the old file or the whole new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write `obj` as JSON with a final newline, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


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
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "save_figure",
    "save_safetensors",
]
