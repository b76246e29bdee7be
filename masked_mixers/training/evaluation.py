"""Held-out scores of a model for its task (see tasks.py): `evaluate` picks the right ones.

Causal language models: loss, perplexity and bits per byte. Bits per byte divides the summed
next-token loss (in bits) by the UTF-8 bytes of the text the predicted tokens cover, so models
with different tokenizers can be compared; the prepared datasets carry that byte count per
example (`num_bytes`). Autoencoders: unshifted reconstruction loss, token accuracy and exact
match (`metrics.evaluate_reconstruction`).
"""

from __future__ import annotations

import math
from itertools import islice

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from transformers import default_data_collator

from ..core.progress import progress_bar
from ..models import family_of
from ..objectives import completion_settings, objective_config, objective_metrics
from .metrics import evaluate_reconstruction
from .tasks import AUTOENCODE, model_task

_MODEL_INPUTS = ("input_ids", "attention_mask", "labels")


def _collate(rows: list[dict]) -> dict:
    return default_data_collator([{k: row[k] for k in _MODEL_INPUTS if k in row} for row in rows])


def _batches(dataset, batch_size: int):
    """Batches of input_ids, attention_mask and labels tensors (b, L), from full rows or a compact store
    (whose rows expand when read, data.examples.as_examples)."""
    return DataLoader(dataset, batch_size=batch_size, collate_fn=_collate)


def evaluate(
    model, dataset, batch_size: int = 16, max_batches: int | None = None, progress: bool = True
) -> dict[str, float]:
    """The held-out metrics of `model`'s task: `evaluate_model` for LMs, reconstruction for autoencoders."""
    if model_task(model) != AUTOENCODE:
        if objective_config(model):
            return evaluate_objective(model, dataset, batch_size, max_batches, progress)
        return evaluate_model(model, dataset, batch_size, max_batches, progress)
    was_training = model.training
    batches = progress_bar(
        islice(_batches(dataset, batch_size), max_batches), desc="eval", disable=not progress, leave=False
    )
    metrics = evaluate_reconstruction(model, batches)
    model.train(was_training)
    return metrics


def evaluate_objective(
    model, dataset, batch_size: int = 16, max_batches: int | None = None, progress: bool = True
) -> dict[str, float]:
    """A model trained with a non-default objective (objectives/): its objective's own scores.

    Multi-token prediction: the plain next-token metrics (comparable with a CLM model's) plus
    `mtp_loss_i` of each pass/head. One-step completion: `loss` is the completion loss (nats per
    predicted token of the second half), with `completion_token_accuracy`.
    """
    was_training = model.training
    model.eval()
    batches = progress_bar(
        islice(_batches(dataset, batch_size), max_batches), desc="eval objective", disable=not progress, leave=False
    )
    extra = objective_metrics(model, batches)
    model.train(was_training)
    if completion_settings(model):
        loss = extra["completion_loss"]
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "token_accuracy": extra["completion_token_accuracy"],
            **extra,
        }
    return {**evaluate_model(model, dataset, batch_size, max_batches, progress), **extra}


@torch.no_grad()
def evaluate_model(
    model, dataset, batch_size: int = 16, max_batches: int | None = None, progress: bool = True
) -> dict[str, float]:
    """Mean next-token cross entropy over all labelled tokens of `dataset` (not a mean of batch means).

    The shift is the family's (`Family.label_shift`): families that predict in place (bidirectional
    models) predict token n at position n from both sides; shifting their labels would score them on
    a token the backward stream has seen.
    """
    shift = family_of(model).label_shift
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = _batches(dataset, batch_size)
    total_nats, total_tokens = 0.0, 0
    for i, batch in enumerate(progress_bar(loader, desc="eval", disable=not progress, leave=False)):
        if max_batches is not None and i >= max_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        labels = batch["labels"][:, shift:]  # position i predicts token i + shift
        logits = logits[:, : logits.shape[1] - shift]
        nats = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
        total_nats += nats.item()
        total_tokens += int((labels != -100).sum())
    model.train(was_training)
    n_examples = min(len(dataset), max_batches * batch_size) if max_batches is not None else len(dataset)
    loss = total_nats / max(total_tokens, 1)
    metrics = {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "tokens": total_tokens}
    if "num_bytes" in dataset.column_names:
        total_bytes = sum(dataset.select(range(n_examples))["num_bytes"])
        metrics["bits_per_byte"] = total_nats / math.log(2) / max(total_bytes, 1)
    return metrics
