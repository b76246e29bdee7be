"""Load a trained model directory (model + tokenizer beside it) of any registered family."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from . import models  # noqa: F401  (registers the mixer families with the Auto classes)
from .errors import UserError


def load_pretrained(model_dir: str | Path, model_class=AutoModelForCausalLM) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model in eval mode, tokenizer) from a directory written by `masked-mixers train`."""
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model directory (no config.json); pass the output_dir of a training run")
    try:
        model = model_class.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: cannot load the model or its tokenizer ({str(err).splitlines()[0]})") from None
    return model.eval(), tokenizer
