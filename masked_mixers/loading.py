"""Load a trained model directory (model + tokenizer beside it) of any registered family."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from . import models  # noqa: F401  (registers this package's model types with the Auto classes)
from .errors import UserError


def load_pretrained(model_dir: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model in eval mode, tokenizer) from a directory written by `masked-mixers train`.

    Language models load through AutoModelForCausalLM; models that are not causal LMs (the
    autoencoders) through AutoModel.
    """
    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model directory (no config.json); pass the output_dir of a training run")
    try:
        config = AutoConfig.from_pretrained(path)
        model_class = AutoModelForCausalLM if type(config) in AutoModelForCausalLM._model_mapping else AutoModel
        model = model_class.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"{path}: cannot load the model or its tokenizer ({str(err).splitlines()[0]})") from None
    return model.eval(), tokenizer
