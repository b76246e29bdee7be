"""What this package wrote in a folder, so that it never removes or overwrites what it did not write.

A folder a command fills (a run folder, a local push, a compare root) holds MANIFEST, a small JSON
file: {"kind": "run" | "push" | ..., "entries": [top-level names this package wrote]}. Clearing a
run (--no-resume), replacing a checkpoint or the final model, and re-pushing touch only the names
listed there; a folder that holds anything else is refused with one line naming the entry.

An entry is recorded before it is written, so a kill between the two leaves at most a listed name
that does not exist (harmless), never a written name that is not listed.

Run folders written before manifests existed have none. Such a folder counts as an old run when it
holds run.yaml beside a file only a run writes (LEGACY_MARKERS) or a checkpoint; its entries are
then ours only where their EXACT names are those an old run wrote (LEGACY_NAMES, checkpoint-<digits>/
holding trainer_state.json, sharded weights model-0000i-of-0000n.safetensors, the modeling files of
this package's models), never by prefix, so a user's model.safetensors.bak or tokenizer-notes/
beside them stays foreign. The first write records the manifest from then on (`record`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..core.errors import UserError
from ..core.files import atomic_write_json

MANIFEST = ".masked-mixers.json"
RUN = "run"
PUSH = "push"

LEGACY_NAMES = frozenset(
    {
        "run.yaml",
        "metrics.jsonl",
        "train_summary.json",
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "chat_template.jinja",
        "training_args.bin",
        ".checkpoint-staging",
        ".lock",
    }
)
LEGACY_MARKERS = ("metrics.jsonl", "train_summary.json", ".lock")  # written only by a run (config.json is any model's)
_SHARD = re.compile(r"model-\d{5}-of-\d{5}\.safetensors")
_CHECKPOINT = re.compile(r"checkpoint-\d+")
_TEMPORARY = re.compile(r"\..+\.tmp")  # files.atomic_path's temporaries, present only while a write is under way


def is_checkpoint(path: Path) -> bool:
    """A Trainer checkpoint folder: checkpoint-<digits>/ holding trainer_state.json."""
    return bool(_CHECKPOINT.fullmatch(path.name)) and (path / "trainer_state.json").is_file()


def _read(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise UserError(
            f"{path}: damaged; it records what masked-mixers wrote in this folder "
            "(move the folder aside or repair the file)"
        )
    return data


def _is_legacy_run(folder: Path) -> bool:
    if not (folder / "run.yaml").is_file():
        return False
    return any((folder / name).exists() for name in LEGACY_MARKERS) or any(
        is_checkpoint(p) for p in folder.glob("checkpoint-*")
    )


def _code_files() -> frozenset[str]:
    """The modeling files save_pretrained copies beside a standalone family's weights: this package's model modules."""
    return frozenset(p.name for p in (Path(__file__).parents[1] / "models").rglob("*.py") if p.name != "__init__.py")


def _legacy_owned(folder: Path) -> set[str]:
    owned, code = set(), _code_files()
    for entry in folder.iterdir():
        if entry.name in LEGACY_NAMES or entry.name in code or _SHARD.fullmatch(entry.name) or is_checkpoint(entry):
            owned.add(entry.name)
    return owned


def kind(folder: str | os.PathLike) -> str | None:
    """The manifest's kind ("run" for an old run folder without one), or None."""
    folder = Path(folder)
    data = _read(folder) if folder.is_dir() else None
    if data is not None:
        return data.get("kind")
    return RUN if folder.is_dir() and _is_legacy_run(folder) else None


def owned(folder: str | os.PathLike) -> set[str]:
    """Top-level names in `folder` this package wrote (manifest, else the old-run rule); empty when none."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    data = _read(folder)
    if data is not None:
        return {str(name) for name in data["entries"]}
    return _legacy_owned(folder) if _is_legacy_run(folder) else set()


def foreign(folder: str | os.PathLike) -> list[str]:
    """Entries of `folder` this package did not write, sorted; [] for a missing or empty folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    ours = owned(folder) | {MANIFEST}
    return sorted(e.name for e in folder.iterdir() if e.name not in ours and not _TEMPORARY.fullmatch(e.name))


def record(folder: str | os.PathLike, *names: str, what: str = RUN) -> None:
    """Add `names` to the folder's manifest (written atomically), creating it with kind `what`."""
    folder = Path(folder)
    data = _read(folder) or {"kind": what, "entries": sorted(owned(folder))}
    entries = set(data["entries"])
    if set(names) <= entries and (folder / MANIFEST).is_file():
        return
    data["entries"] = sorted(entries | set(names))
    atomic_write_json(folder / MANIFEST, data)


def forget(folder: str | os.PathLike, *names: str) -> None:
    """Drop `names` from the folder's manifest (after they were removed)."""
    folder = Path(folder)
    data = _read(folder)
    if data is not None:
        data["entries"] = sorted(set(data["entries"]) - set(names))
        atomic_write_json(folder / MANIFEST, data)


def forget_missing(folder: str | os.PathLike, pattern: str) -> None:
    """Drop from the manifest the entries matching the glob `pattern` that no longer exist (rotated checkpoints)."""
    folder = Path(folder)
    gone = [name for name in owned(folder) if Path(name).match(pattern) and not (folder / name).exists()]
    if gone:
        forget(folder, *gone)


def remove(folder: str | os.PathLike, name: str) -> bool:
    """Delete folder/name if this package wrote it; False (nothing touched) otherwise."""
    folder = Path(folder)
    entry = folder / name
    if name not in owned(folder):
        return False
    try:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()
    except OSError as err:
        raise UserError(f"{entry}: cannot remove ({err.strerror or err})") from None
    return True


def check_own(folder: str | os.PathLike, name: str) -> None:
    """Refuse to replace folder/name when it exists and this package did not write it."""
    entry = Path(folder) / name
    if (entry.exists() or entry.is_symlink()) and name not in owned(folder):
        raise UserError(
            f"{entry}: exists and was not written by masked-mixers; move it away or choose another output folder"
        )


def move_in(staging: str | os.PathLike, folder: str | os.PathLike, names: list[str], what: str = RUN) -> None:
    """Move `names` from a complete staging folder into `folder`, in the order given: the one staged swap.

    Each name must be absent or ours (`check_own`) and is recorded before it moves; an earlier entry
    of the same name (ours) is replaced. Each move is a rename within one filesystem, so a reader
    sees the old entry or the whole new one; callers order the names so the one that marks the
    folder complete (config.json) comes last.
    """
    for name in names:
        check_own(folder, name)  # a user's file where ours goes is refused, not replaced
    record(folder, *names, what=what)
    for name in names:
        target = Path(folder) / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # ours: checked above
        os.replace(Path(staging) / name, target)


def enclosing_run(path: str | os.PathLike) -> Path | None:
    """The run folder or checkpoint that `path` lies inside (not `path` itself), or None."""
    path = Path(os.path.realpath(os.path.expanduser(path)))
    for parent in path.parents:
        if is_checkpoint(parent) or (parent.is_dir() and kind(parent) == RUN):
            return parent
    return None


def check_destination(folder: str | os.PathLike, what: str, option: str) -> None:
    """Refuse, before any work, a folder that holds entries this package did not write, is a
    checkpoint, or lies inside another run; `option` names the setting to change in the message."""
    folder = Path(folder)
    inside = enclosing_run(folder)
    if inside is not None:
        raise UserError(
            f"{folder}: lies inside the run folder {inside}; writing there would damage that run; "
            f"choose another {option}"
        )
    if is_checkpoint(folder):
        raise UserError(f"{folder}: is a checkpoint of another run; choose another {option}")
    if folder.is_dir() and kind(folder) not in (None, what):
        raise UserError(f"{folder}: holds a masked-mixers {kind(folder)} folder, not a {what}; choose another {option}")
    stray = foreign(folder)
    if stray:
        more = f" (and {len(stray) - 1} more)" if len(stray) > 1 else ""
        raise UserError(
            f"{folder}: holds {stray[0]!r}{more}, which masked-mixers did not write; choose an empty or new {option}"
        )


__all__ = [
    "MANIFEST",
    "PUSH",
    "RUN",
    "check_destination",
    "check_own",
    "enclosing_run",
    "foreign",
    "forget",
    "forget_missing",
    "is_checkpoint",
    "kind",
    "owned",
    "record",
    "remove",
]
