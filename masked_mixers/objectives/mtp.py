"""Multi-token prediction (`train.objective: mtp`), for every causal family.

Two ways to predict n tokens ahead (`train.mtp_mode`):

- `recurrent` (the author's code, findings.md "Beyond the seed"): n passes of the whole model.
  Pass 0 reads the text; pass i+1 reads pass i's greedy predictions (argmax, so no gradient flows
  between passes). Pass i adds CE(logits_i[:, :-(1+i)], labels[:, 1+i:]): its position p, which
  has read the model's guesses for tokens 1..p+i, predicts token p+1+i. No new parameters.
- `heads`: one trunk pass and n output heads on the feature the LM head reads. Head 0 is the
  model's own LM head; head k >= 1 is a residual SiLU block (zero-initialised, so it starts as a
  copy of head 0) followed by the shared unembedding, and predicts token p+1+k (Medusa-style
  blocks, shared unembedding as in Gloeckle et al. 2024). Head k's logits are the draft a
  self-speculative decoder (speculative.py) checks against the main head.

Pass/head 0's loss is the model's own next-token loss (the same call, so with n = 1 the MTP loss
is the CLM loss exactly); the objective's loss is the sum over passes/heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import capture_head_input, lm_head, objective_config, shifted_ce

MODES = ("recurrent", "heads")


class MTPHeads(nn.Module):
    """Heads 1..n-1: head k(h) = unembed(h + SiLU(W_k h + b_k)); W_k, b_k start at zero."""

    def __init__(self, hidden_size: int, count: int):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Linear(hidden_size, hidden_size) for _ in range(count))
        for block in self.blocks:
            nn.init.zeros_(block.weight)
            nn.init.zeros_(block.bias)

    def forward(self, feature: torch.Tensor, unembed: nn.Linear) -> list[torch.Tensor]:
        # feature (b, t, d) -> one (b, t, vocab) per head
        return [F.linear(feature + F.silu(block(feature)), unembed.weight, unembed.bias) for block in self.blocks]


def attach_heads(model, tokens: int) -> None:
    """Give `model` the n-1 extra heads of `mtp_mode: heads` (saved with it as `mtp_heads.*`)."""
    d = lm_head(model).in_features
    heads = MTPHeads(d, tokens - 1)
    model.mtp_heads = heads.to(device=lm_head(model).weight.device, dtype=lm_head(model).weight.dtype)


def mtp_settings(model) -> tuple[int, str]:
    """(n, mode) of an MTP-trained model; (1, "recurrent") for any other."""
    settings = objective_config(model) or {}
    if settings.get("name") != "mtp":
        return 1, "recurrent"
    return int(settings["tokens"]), settings["mode"]


def mtp_forward(
    model,
    input_ids,
    attention_mask=None,
    labels=None,
    tokens: int = 2,
    mode: str = "recurrent",
    num_items_in_batch=None,
):
    """(losses or None, logits per pass/head, the first pass's outputs).

    losses[i] = CE(logits[i][:, :-(1+i)], labels[:, 1+i:]); losses[0] is the model's own loss.
    """
    extra = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
    if mode == "heads":
        with capture_head_input(model) as feature:
            first = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)
        logits = [first.logits, *(model.mtp_heads(feature.value, lm_head(model)) if tokens > 1 else [])]
    elif mode == "recurrent":
        first = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **extra)
        logits, ids = [first.logits], input_ids
        for _ in range(1, tokens):
            ids = logits[-1].argmax(-1).detach()  # (b, t): position p now holds the guess for token p+1
            logits.append(model(input_ids=ids, attention_mask=attention_mask).logits)
    else:
        raise ValueError(f"mtp mode {mode!r} (choose from {', '.join(MODES)})")
    if labels is None:
        return None, logits, first
    losses = [first.loss] + [shifted_ce(lg, labels, 1 + i, num_items_in_batch) for i, lg in enumerate(logits[1:], 1)]
    return losses, logits, first


def mtp_compute_loss(model, inputs: dict, tokens: int, mode: str, num_items_in_batch=None):
    """(summed loss, first pass outputs) for the Trainer's compute_loss."""
    losses, _, first = mtp_forward(
        model, inputs["input_ids"], inputs.get("attention_mask"), inputs["labels"], tokens, mode, num_items_in_batch
    )
    return sum(losses), first


@torch.no_grad()
def mtp_eval_sums(model, batch: dict, tokens: int, mode: str) -> list[tuple[float, int]]:
    """(summed nats, counted tokens) of each pass/head on one batch, for held-out averages."""
    _, logits, _ = mtp_forward(model, batch["input_ids"], batch.get("attention_mask"), None, tokens, mode)
    sums = []
    for i, lg in enumerate(logits):
        labels = batch["labels"][:, 1 + i :]
        count = int((labels != -100).sum())
        sums.append((float(shifted_ce(lg, batch["labels"], 1 + i, 1)), count))
    return sums


__all__ = ["MODES", "MTPHeads", "attach_heads", "mtp_compute_loss", "mtp_eval_sums", "mtp_forward", "mtp_settings"]
