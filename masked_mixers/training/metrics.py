"""Reconstruction metrics for autoencoders: how much of the input comes back out.

Computed from logits (or argmax predictions) and labels with the usual -100 for positions to
ignore (pads), without shifting: prediction i is compared with label i. Counts add up across
batches (`ReconstructionCounts`), so a whole evaluation set never has to sit in memory as logits;
`compute_reconstruction_metrics` plugs into an HF Trainer as `compute_metrics` next to
`argmax_logits` as `preprocess_logits_for_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = -100


def _as_tensor(values) -> torch.Tensor:
    return values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))


def argmax_logits(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(b, t, vocab) -> (b, t) predicted token ids; the Trainer's preprocess_logits_for_metrics hook."""
    if isinstance(logits, tuple):  # the Trainer passes every non-loss output; logits come first
        logits = logits[0]
    return logits.argmax(dim=-1)


@dataclass
class ReconstructionCounts:
    """Running totals: correct / scored tokens, and sequences rebuilt exactly / sequences scored.

    A sequence with no scored position (all labels -100) counts for neither total.
    """

    correct_tokens: int = 0
    tokens: int = 0
    exact_sequences: int = 0
    sequences: int = 0

    def update(self, predictions, labels) -> ReconstructionCounts:
        """Add a batch: `predictions` are logits (b, t, vocab) or token ids (b, t); labels (b, t)."""
        predictions, labels = _as_tensor(predictions), _as_tensor(labels)
        if predictions.dim() == labels.dim() + 1:
            predictions = argmax_logits(predictions)
        if predictions.shape != labels.shape:
            raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ in shape")
        scored = labels != IGNORE_INDEX  # (b, t)
        wrong = (predictions.to(labels.device) != labels) & scored  # (b, t)
        has_tokens = scored.any(dim=-1)  # (b,)
        self.correct_tokens += int(scored.sum() - wrong.sum())
        self.tokens += int(scored.sum())
        self.exact_sequences += int((has_tokens & ~wrong.any(dim=-1)).sum())
        self.sequences += int(has_tokens.sum())
        return self

    def result(self) -> dict[str, float]:
        """token_accuracy and exact_match as fractions (nan when nothing was scored)."""
        return {
            "token_accuracy": self.correct_tokens / self.tokens if self.tokens else float("nan"),
            "exact_match": self.exact_sequences / self.sequences if self.sequences else float("nan"),
        }


def reconstruction_metrics(predictions, labels) -> dict[str, float]:
    """token_accuracy over non-ignored positions and exact_match over whole sequences, for one batch."""
    return ReconstructionCounts().update(predictions, labels).result()


def compute_reconstruction_metrics(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for an HF Trainer (use `argmax_logits` as preprocess_logits_for_metrics)."""
    return reconstruction_metrics(eval_prediction.predictions, eval_prediction.label_ids)


@torch.no_grad()
def evaluate_reconstruction(model, batches) -> dict[str, float]:
    """Mean reconstruction loss (token-weighted), token_accuracy and exact_match over `batches`.

    batches: an iterable of dicts with input_ids, labels and optionally attention_mask tensors.
    """
    model.eval()
    device = next(model.parameters()).device
    counts, loss_sum = ReconstructionCounts(), 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}
        out = model(**batch)
        scored = int((batch["labels"] != IGNORE_INDEX).sum())
        if scored:  # a batch of pads only has a nan mean loss and no weight
            loss_sum += float(out.loss) * scored
        counts.update(out.logits, batch["labels"])
    return {"loss": loss_sum / counts.tokens if counts.tokens else float("nan"), **counts.result()}


__all__ = [
    "ReconstructionCounts",
    "argmax_logits",
    "compute_reconstruction_metrics",
    "evaluate_reconstruction",
    "reconstruction_metrics",
]
