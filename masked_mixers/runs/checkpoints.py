"""Which checkpoint a resume may use: the one place that defines an intact `checkpoint-N/`.

The staging rename (trainer.py) keeps a kill from leaving a half-written checkpoint, but a folder
can still be damaged afterwards: a truncated copy, a disk error, a file removed by hand, an empty
`checkpoint-999` made by mistake, or an optimizer.pt replaced by a pickle that would run code when
loaded. The Trainer's resume would fail on such a folder with a library traceback (or, without
scheduler.pt, silently restart the learning-rate warm-up), and transformers' get_last_checkpoint
never looks past the newest one. Here each checkpoint is checked, cheaply and without running
anything from it, newest first:

  trainer_state.json   parses as a JSON object with an integer global_step
  weights              present; every .safetensors file opens with safe_open (header read only)
  optimizer.pt         present and loadable, as is scheduler.pt
  rng_state*.pth       (when present) loadable

Every .pt/.pth file is read with torch.load(weights_only=True, mmap=True): tensors and plain
containers only, so a pickle payload is refused rather than executed, and the tensors' bytes are
mapped, not read. Damaged checkpoints are skipped, never deleted: they may be the user's evidence.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..core.errors import UserError, reason
from .rundir import CHECKPOINT_PREFIX, WEIGHTS_SUFFIXES

TRAINER_STATE = "trainer_state.json"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")


def checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of `run_dir`, newest (highest N) first."""
    path = Path(run_dir)
    if not path.is_dir():
        return []
    found = [(int(m.group(1)), entry) for entry in path.iterdir() if (m := _NAME.match(entry.name)) and entry.is_dir()]
    return [entry for _, entry in sorted(found, key=lambda item: item[0], reverse=True)]


def _load_safely(file: Path) -> None:
    import torch
    from transformers.trainer_pt_utils import safe_globals

    with safe_globals():  # the numpy RNG state's types, which transformers allows the same way
        torch.load(file, map_location="cpu", weights_only=True, mmap=True)


def _check_weights(folder: Path, names: set[str]) -> None:
    from safetensors import safe_open

    weights = [
        folder / n for n in names if n.startswith(("model", "pytorch_model")) and n.endswith(WEIGHTS_SUFFIXES)
    ]  # not training_args.bin
    if not weights and not any(n.startswith("pytorch_model_fsdp") for n in names):  # FSDP saves a folder of shards
        raise ValueError("no model weights")
    for file in weights:
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:
                handle.keys()


def damage(folder: str | os.PathLike) -> str | None:
    """Why the checkpoint `folder` cannot be resumed from, in a few words; None when it is intact."""
    folder = Path(folder)
    names = set(os.listdir(folder))
    if TRAINER_STATE not in names:
        return f"no {TRAINER_STATE}"
    try:
        state = json.loads((folder / TRAINER_STATE).read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
            return f"{TRAINER_STATE} has no global_step"
    except (OSError, ValueError) as err:
        return f"{TRAINER_STATE} is damaged ({reason(err)})"
    try:
        _check_weights(folder, names)
    except Exception as err:  # safetensors_rust.SafetensorError, OS errors
        return f"weights damaged ({reason(err)})"
    fsdp_optimizer = any(
        n.startswith("optimizer") and n != OPTIMIZER for n in names
    )  # FSDP: optimizer_0/ or optimizer.bin
    required = ([] if fsdp_optimizer else [OPTIMIZER]) + [SCHEDULER]
    for name in required:
        if name not in names:
            return f"no {name} (its {'optimizer' if name == OPTIMIZER else 'learning-rate schedule'} state)"
    for name in sorted(
        n for n in names if n in (OPTIMIZER, SCHEDULER) or (n.startswith("rng_state") and n.endswith(".pth"))
    ):
        try:
            _load_safely(folder / name)
        except Exception as err:  # truncated zip, pickle payload refused by weights_only, unreadable file
            return f"{name} cannot be loaded safely ({type(err).__name__}: {reason(err)})"
    return None


def newest_intact(run_dir: str | os.PathLike, warn=None) -> str | None:
    """The newest intact checkpoint of `run_dir` (None when it has none at all).

    Each damaged checkpoint passed over is reported through `warn(line)`, naming it and why.
    Checkpoints that exist but are all damaged are one UserError: resuming none of them would
    silently start the run over.
    """
    skipped = []
    for folder in checkpoints(run_dir):
        why = damage(folder)
        if why is None:
            return str(folder)
        skipped.append(f"{folder.name} ({why})")
        if warn is not None:
            warn(f"{folder}: skipped for resume: {why}")
    if skipped:
        raise UserError(
            f"{run_dir}: no intact checkpoint to resume from ({'; '.join(skipped)}); "
            "repair or move them aside, or use --no-resume to start over"
        )
    return None


__all__ = ["checkpoints", "damage", "newest_intact"]
