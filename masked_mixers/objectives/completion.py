"""One-step completion (`train.objective: completion`): the first half of L tokens predicts the
second half in one forward pass (the author's later sections, findings.md "Beyond the seed").

With h = L // 2 and m = num_hidden_layers // 2: the blocks before m run on all L positions; at the
input of block m the hidden states of positions h..L-1 are replaced by one learned vector
(`CompletionMask`), so from there on nothing of the tokens at h..L-1 is left in the model (and
blocks before m are causal, so no position < h ever read them). Position p >= h - 1 then predicts
token p + 1 (the usual shift): h - 1 predicts token h from the real text, h..L-2 predict tokens
h+1..L-1 from the first half alone. The loss covers only those L - h tokens (labels of the first
half are -100).

The replacement is a forward pre-hook on block m (`model.model.layers[m]`), so no family's
forward changes; a family supports it when its registry entry says so
(`Capabilities.one_step_completion`): its blocks take the (b, t, d) hidden states as their first
argument, in column order for unpadded and right-padded batches.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..models import context_length
from .base import lm_head, objective_config, trunk_layers


class CompletionMask(nn.Module):
    """The learned vector that stands in for every position to be predicted."""

    def __init__(self, hidden_size: int, scale: float):
        super().__init__()
        self.vector = nn.Parameter(torch.randn(hidden_size) * scale)


def attach_mask(model) -> dict:
    """Give `model` its mask vector (saved as `completion_mask.vector`); the settings to record."""
    embed = model.get_input_embeddings().weight
    scale = float(
        embed.detach().float().std()
    )  # the size of an input embedding, so norms after it see a typical vector
    model.completion_mask = CompletionMask(embed.shape[1], scale).to(device=embed.device, dtype=embed.dtype)
    return {"name": "completion", "mask_layer": len(trunk_layers(model)) // 2, "split": context_length(model) // 2}


def completion_settings(model) -> dict | None:
    settings = objective_config(model)
    return settings if settings and settings.get("name") == "completion" else None


@contextlib.contextmanager
def masked_second_half(model):
    """Inside: every forward replaces the hidden states of positions >= split at block mask_layer."""
    settings = completion_settings(model)
    split, layer = settings["split"], settings["mask_layer"]
    vector = model.completion_mask.vector

    def hook(module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]  # (b, t, d)
        if x.shape[1] <= split:
            return None
        fill = vector.to(x.dtype).expand(x.shape[0], x.shape[1] - split, x.shape[2])
        x = torch.cat([x[:, :split], fill], dim=1)
        if args:
            return (x, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": x}

    handle = trunk_layers(model)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield settings
    finally:
        handle.remove()


def completion_labels(labels: torch.Tensor, split: int) -> torch.Tensor:
    """Labels with the first half ignored: only tokens split..L-1 are scored."""
    labels = labels.clone()
    labels[:, :split] = -100
    return labels


def completion_forward(model, input_ids, attention_mask=None, labels=None, num_items_in_batch=None):
    """The model's outputs with the second half masked; its loss covers the second half only."""
    extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    with masked_second_half(model) as settings:
        if labels is not None:
            labels = completion_labels(labels, settings["split"])
        return model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)


@torch.no_grad()
def completion_eval_sums(model, batch: dict) -> tuple[float, int, int]:
    """(summed nats, predicted tokens, right argmax tokens) of one batch."""
    out = completion_forward(model, batch["input_ids"], batch.get("attention_mask"))
    split = completion_settings(model)["split"]
    labels = completion_labels(batch["labels"], split)[:, 1:]
    logits = out.logits[:, :-1].float()  # position p predicts token p + 1
    valid = labels != -100
    nats = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, reduction="sum")
    right = ((logits.argmax(-1) == labels) & valid).sum()
    return float(nats), int(valid.sum()), int(right)


@torch.no_grad()
def one_step_ids(model, prompt_ids: list[list[int]], pad_id: int) -> torch.Tensor:
    """L - h new token ids per prompt (b, L - h), all from one forward pass.

    Each prompt (its last h tokens) is left-padded to h so its last token sits at h - 1 as in
    training; positions h..L-1 hold pad ids, which the mask replaces before they matter.
    """
    settings = completion_settings(model)
    if settings is None:
        raise ValueError("this model was not trained with train.objective: completion")
    split, length = settings["split"], context_length(model)
    ids = torch.full((len(prompt_ids), length), pad_id, dtype=torch.long)
    mask = torch.ones_like(ids)
    for row, tokens in enumerate(prompt_ids):
        tokens = tokens[-split:]
        ids[row, split - len(tokens) : split] = torch.tensor(tokens)
        mask[row, : split - len(tokens)] = 0
    device = lm_head(model).weight.device
    logits = completion_forward(model, ids.to(device), mask.to(device)).logits  # (b, L, vocab)
    return logits[:, split - 1 : length - 1].argmax(-1)


__all__ = [
    "CompletionMask",
    "attach_mask",
    "completion_eval_sums",
    "completion_forward",
    "completion_labels",
    "completion_settings",
    "masked_second_half",
    "one_step_ids",
]
