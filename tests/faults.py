"""Shared pieces of the fault-and-misuse suite (tests/test_faults_*.py, issue 16).

Every case runs a real CLI entry point in this process (`masked_mixers.cli.main`) and classifies
what a user would see, as the issue counts it:

  one line   exit 2, the last stderr line is `masked-mixers CMD: error: ...`, no traceback
  traceback  an exception escaped main()
  silent     exit 0 on a mistake (a wrong result reported as a right one)
  partial    the command refused but left a file or folder behind (or changed one it must not)
  right result  a case whose correct outcome is not an error (a finished run rerun, a symlink
             written through), counted once its assertions passed

The suite asserts "one line" and "nothing left behind" for every bad input; `OUTCOMES` collects
the classification, and tests/conftest.py's `pytest_terminal_summary` prints the table that
docs/distributed.md reports at the end of a run that included the fault suite.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from pathlib import Path

import yaml
from clirun import write_config

from masked_mixers.cli import main

OUTCOMES: Counter = Counter()


def snapshot(path: Path) -> dict[str, str]:
    """Relative path -> content hash (or 'dir') of everything under `path` ({} if it does not exist)."""
    if not path.exists():
        return {}
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
    }


def classify(argv: list[str], capsys, watched: tuple[Path, ...] = ()) -> tuple[str, str]:
    """Run `masked-mixers ARGV`; (outcome, last stderr line). `watched` paths must end as they began."""
    before = [snapshot(p) for p in watched]
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except BaseException as err:  # noqa: BLE001 - anything escaping main is a traceback to the user
        capsys.readouterr()
        return "traceback", f"{type(err).__name__}: {err}"
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1] if err.strip() else ""
    if any(snapshot(p) != b for p, b in zip(watched, before)):
        return "partial", last
    if rc == 0:
        return "silent", last
    if rc == 2 and "Traceback" not in err and last.startswith(f"masked-mixers {argv[0]}: error: "):
        return "one line", last
    return "traceback", err[-2000:]


def expect_one_line(
    argv: list[str], capsys, *, watched: tuple[Path, ...] = (), names: str | None = None, item: int | None = None
) -> str:
    """Assert the bad input `argv` is one line (naming `names` when given) and changes nothing watched."""
    outcome, line = classify(argv, capsys, watched)
    OUTCOMES[(item, outcome)] += 1
    assert outcome == "one line", f"{outcome}: {line}"
    if names is not None:
        assert names in line, line
    return line


def record(item: int) -> None:
    """Count a case whose right outcome is not an error (a rerun that changes nothing, a link kept):
    called after its assertions passed, so it is counted only when the behaviour held."""
    OUTCOMES[(item, "right result")] += 1


def tiny_config(tmp_path: Path, name: str = "run.yaml", cache: Path | None = None, **train) -> Path:
    """The tiny CLI config of clirun.py (d=32, 2 layers, L=32, 300 stories) writing into tmp_path/out."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    output_dir = train.pop("output_dir", tmp_path / "out")
    return write_config(tmp_path / name, cache or tmp_path / "cache", output_dir, **train)


def edit_yaml(path: Path, **sections) -> Path:
    """Replace or delete (value None) top-level sections of a YAML config."""
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def copy_model(source: Path, target: Path) -> Path:
    """A copy of a trained model folder without its checkpoints (the damage goes into the copy)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*", ".lock"))
    return target
