"""What every training objective shares: where a model records its objective, the loss of
shifted predictions, and two hooks that reach inside any causal family without editing its forward.

A model trained with an objective other than plain next-token prediction (`train.objective`)
carries it in its config as `training_objective` (a dict saved in config.json), so evaluation,
generation and `load_run` know what it was trained for. Objectives that add parameters (MTP
heads, the completion mask vector) attach them as sub-modules of the model: they are saved in
the same safetensors file as the model and trained, checkpointed and resumed by the HF Trainer
like any other weight; `restore_modules` puts them back after `from_pretrained`, which does not
know them.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

OBJECTIVE_KEY = "training_objective"  # the config attribute (config.json key) naming a model's objective


def objective_config(model) -> dict | None:
    """The objective a model was trained with ({"name": ..., ...}), None for plain next-token training."""
    config = getattr(model, "config", model)
    value = getattr(config, OBJECTIVE_KEY, None)
    return dict(value) if value else None


def record(model, settings: dict) -> None:
    setattr(model.config, OBJECTIVE_KEY, dict(settings))


def shifted_ce(
    logits: torch.Tensor, labels: torch.Tensor, ahead: int, num_items: int | torch.Tensor | None = None
) -> torch.Tensor:
    """CE(logits[:, :-ahead], labels[:, ahead:]): position p predicts the token `ahead` places later.

    logits (b, t, vocab), labels (b, t) with -100 ignored. Mean over the counted tokens, or their
    sum divided by `num_items` (what the HF Trainer passes under gradient accumulation).
    """
    logits, labels = logits[:, : logits.shape[1] - ahead], labels[:, ahead:]
    total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
    count = num_items if num_items is not None else (labels != -100).sum().clamp(min=1)
    return total / count


def lm_head(model) -> nn.Linear:
    """The model's output embedding (d -> vocab): `lm_head` in every causal family of this package."""
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear LM head to extend")
    return head


def trunk_layers(model) -> nn.ModuleList:
    """The decoder blocks of a causal LM: `model.model.layers` in every family that has them."""
    layers = getattr(getattr(model, "model", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"{type(model).__name__} has no `model.layers` block list")
    return layers


class HeadInput:
    """What the LM head read in the last forward under `capture_head_input`: (b, t, d)."""

    value: torch.Tensor | None = None


@contextlib.contextmanager
def capture_head_input(model):
    """Record the LM head's input: the trunk's final feature after whatever norm or activation the
    family puts before its head, read the same way for every family (a forward pre-hook)."""
    captured = HeadInput()

    def hook(module, args):
        captured.value = args[0]

    handle = lm_head(model).register_forward_pre_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / s for s in shards]
    return sorted(model_dir.glob("*.safetensors"))


def restore_modules(model, model_dir, prefix: str) -> None:
    """Load the saved weights under `prefix` (e.g. "mtp_heads.") into the already attached module.

    Hand-written because `from_pretrained` drops keys its class does not declare; the weights are
    read from the same safetensors file(s) the model was loaded from.
    """
    state = {}
    for path in _weight_files(Path(model_dir)):
        with safe_open(str(path), framework="pt") as f:
            state.update({k[len(prefix) :]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)})
    module = model.get_submodule(prefix.rstrip("."))
    module.load_state_dict(state)  # strict: a missing head weight is an error, not a silent random head
    module.to(next(model.parameters()).device)


__all__ = [
    "OBJECTIVE_KEY",
    "HeadInput",
    "capture_head_input",
    "lm_head",
    "objective_config",
    "record",
    "restore_modules",
    "shifted_ce",
    "trunk_layers",
]
