"""What a model is trained to do, and therefore how it is scored.

A model's task is part of its family's declaration (`Family.task`, models/family.py): the
autoencoders are "autoencode"; every other family, transformers' own Llama included, is a causal
language model. Training, evaluation and compare read it (`factory.family_task` before a model
exists), so no config ever states the task a second time.

- causal_lm: next-token (shifted) loss, perplexity, bits per byte; generated text samples.
- autoencode: reconstruction (unshifted) loss, per-token accuracy, exact match of whole
  sequences; reconstructions of held-out examples.
"""

from __future__ import annotations

from ..models import AUTOENCODE, CAUSAL_LM, TASKS, family_of
from .metrics import argmax_logits, compute_reconstruction_metrics


def model_task(model) -> str:
    """The task of a model instance: its family's."""
    return family_of(model).task


def trainer_metric_hooks(task: str) -> dict:
    """Extra HF Trainer arguments, so evaluations during training report the task's own metrics.

    The Trainer's eval_loss is the model's own loss either way (unshifted for autoencoders); an
    autoencoder adds eval_token_accuracy and eval_exact_match, computed from argmax ids so the
    Trainer never holds a whole evaluation set of logits.
    """
    if task == AUTOENCODE:
        return {"compute_metrics": compute_reconstruction_metrics, "preprocess_logits_for_metrics": argmax_logits}
    return {}


def describe_metrics(metrics: dict, task: str) -> str:
    """One phrase for a summary line: the held-out numbers that matter for `task`."""
    if task == AUTOENCODE:
        return (
            f"eval reconstruction loss {metrics['loss']:.4f} (token accuracy {metrics['token_accuracy']:.2%}, "
            f"exact match {metrics['exact_match']:.2%})"
        )
    if "completion_loss" in metrics:  # train.objective: completion (objectives/)
        return (
            f"eval completion loss {metrics['completion_loss']:.4f} "
            f"(token accuracy {metrics['completion_token_accuracy']:.2%})"
        )
    bpb = metrics.get("bits_per_byte", float("nan"))
    text = f"eval loss {metrics['loss']:.4f} (ppl {metrics['perplexity']:.2f}, {bpb:.3f} bits/byte)"
    heads = [f"{metrics[k]:.4f}" for k in sorted(metrics) if k.startswith("mtp_loss_")]
    return text + (f", per pass/head {' / '.join(heads)}" if heads else "")


__all__ = ["AUTOENCODE", "CAUSAL_LM", "TASKS", "describe_metrics", "model_task", "trainer_metric_hooks"]
