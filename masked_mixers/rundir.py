"""The output folder of a training run, written down once: what is in it and how to read it back.

`masked-mixers train` (training.py) fills OUTPUT_DIR with:

  config.json, model.safetensors   the model, via save_pretrained (loadable with the Auto classes)
  tokenizer.json, tokenizer_config.json, ...
                                   the tokenizer the run trained with, padding side included
  run.yaml                         the run config (RUN_CONFIG), written before training starts
  metrics.jsonl                    one JSON object per log/eval event (METRICS), appended as training
                                   goes, so a kill can leave its last line torn
  train_summary.json               what the finished run measured (SUMMARY), written at the end
  checkpoint-N/                    Trainer checkpoints (CHECKPOINT_PREFIX), for resume
  .checkpoint-staging/             a checkpoint being written (STAGING_DIR), renamed to
                                   checkpoint-N once complete (trainer.py)

Everything that reads a run folder (eval, generate, the probes, retrieval, compare) goes through
`load_run` and `read_metrics` here, so a change of layout or of loading policy happens in one place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import UserError, reason

MODEL_CONFIG = "config.json"
RUN_CONFIG = "run.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "train_summary.json"
CHECKPOINT_PREFIX = "checkpoint"  # transformers.trainer_utils.PREFIX_CHECKPOINT_DIR: checkpoint-<step>
STAGING_DIR = ".checkpoint-staging"


def is_model_dir(path: str | os.PathLike) -> bool:
    """Whether `path` holds a saved model (a config.json beside the weights)."""
    return (Path(path) / MODEL_CONFIG).is_file()


def load_run(model_dir: str | os.PathLike):
    """(model in eval mode, tokenizer) from a directory written by `masked-mixers train`.

    The model class follows the family's task (models.family_of): AutoModelForCausalLM for
    language models, AutoModel for the autoencoders. No code from the directory is ever run
    (trust_remote_code=False): a model folder is data. The tokenizer keeps the padding side it
    was saved with, which is the side the model was trained with (generation lays prompts out
    on it). Anything that is not a loadable model folder of this package is one-line UserError.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    from .objectives import restore as restore_objective
    from .models import AUTOENCODE, family_of  # also registers this package's model types with the Auto classes

    path = Path(model_dir)
    if not is_model_dir(path):
        raise UserError(f"{path}: not a model directory (no {MODEL_CONFIG}); pass the output_dir of a training run")
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        family = family_of(config)
        model_class = AutoModel if family.task == AUTOENCODE else AutoModelForCausalLM
        model = model_class.from_pretrained(path, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        restore_objective(model, path)  # MTP heads / completion mask vector, which from_pretrained leaves out
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise UserError(f"{path}: cannot load the model or its tokenizer ({reason(err)})") from None
    return model.eval(), tokenizer


def metrics_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / METRICS


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The events of a metrics.jsonl (or of a run folder's), oldest first; [] when there is none.

    A run killed mid-write leaves its last line torn: that line is dropped. Any other line that
    is not a JSON object means the file was damaged some other way, which is a one-line UserError
    naming the line rather than a silently shorter history.
    """
    path = Path(path)
    if path.is_dir():
        path = metrics_path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif number < len(lines):
            raise UserError(f"{path}:{number}: not a JSON object; the metrics file is damaged")
    return records


__all__ = [
    "CHECKPOINT_PREFIX",
    "METRICS",
    "MODEL_CONFIG",
    "RUN_CONFIG",
    "STAGING_DIR",
    "SUMMARY",
    "is_model_dir",
    "load_run",
    "metrics_path",
    "read_metrics",
]
