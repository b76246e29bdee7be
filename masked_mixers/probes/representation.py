"""Input representation accuracy: how much of its input a model's hidden state still holds.

The paper's probe (Badger, arXiv 2409.01482): take the hidden state after a chosen block for a
real input, then start from random input embeddings and run gradient descent on the input alone
(model frozen) until the model maps it to the same hidden state. If the block kept the input, the
recovered embeddings decode back to the real tokens. Decoding goes through the pseudo-inverse of
the embedding matrix (or the nearest embedding), and the score is a modified Hamming metric: the
fraction of real (non-pad) positions whose true token is not among the top k decoded tokens, so
0 is perfect recovery and 1 recovers nothing.

Blocks are counted from 1 (block n = the last); `hidden_states[block]` of the model's output,
so for Llama the last block's state is after its final RMSNorm, exactly as transformers returns it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import get_scheduler

LOSSES = ("l1", "l2")
SCHEDULES = ("constant", "linear", "cosine")
DECODERS = ("pinv", "nearest")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class InversionSettings:
    """How the input is recovered and scored.

    learning_rate is in units of the embedding matrix's standard deviation: the optimiser moves
    z, with embeds = std * z, so one setting suits a N(0, 1) mixer embedding and a N(0, 0.02)
    Llama embedding alike. The start is z ~ N(0, 1), a random point of the embedding's scale.
    optimizer: "adam" (default) or "sgd" (plain gradient descent).
    """

    steps: int = 500
    learning_rate: float = 0.1
    schedule: str = "cosine"
    loss: str = "l1"
    decode: str = "pinv"
    top_k: int = 5
    optimizer: str = "adam"
    seed: int = 0

    def __post_init__(self):
        checks = (("loss", self.loss, LOSSES), ("schedule", self.schedule, SCHEDULES), ("decode", self.decode, DECODERS), ("optimizer", self.optimizer, tuple(OPTIMIZERS)))
        for name, value, options in checks:
            if value not in options:
                raise ValueError(f"{name} must be one of {options}, got {value!r}")
        if self.steps < 0 or self.top_k < 1 or self.learning_rate <= 0:
            raise ValueError("steps must be >= 0, top_k >= 1 and learning_rate > 0")


@dataclass
class RecoveryCounts:
    """Per-position tallies that add up over batches: misses (true token not in top k), top-1 hits, real tokens."""

    misses: torch.Tensor
    top1_hits: torch.Tensor
    totals: torch.Tensor

    def __add__(self, other: RecoveryCounts) -> RecoveryCounts:
        return RecoveryCounts(self.misses + other.misses, self.top1_hits + other.top1_hits, self.totals + other.totals)

    @property
    def hamming(self) -> float:
        """Modified Hamming metric: fraction of real positions whose true token is not in the top k."""
        return float(self.misses.sum() / self.totals.sum().clamp(min=1))

    @property
    def top1(self) -> float:
        """Fraction of real positions decoded exactly (top-1)."""
        return float(self.top1_hits.sum() / self.totals.sum().clamp(min=1))

    @property
    def per_position(self) -> list[float | None]:
        """The Hamming metric at each position (None where no sequence has a real token there)."""
        return [None if n == 0 else float(m / n) for m, n in zip(self.misses.tolist(), self.totals.tolist())]


def recovery_counts(topk_ids: torch.Tensor, true_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> RecoveryCounts:
    """Score decoded tokens: topk_ids (b, t, k) best first, true_ids (b, t), attention_mask (b, t) 1 = real token."""
    real = torch.ones_like(true_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    hit = (topk_ids == true_ids[..., None]).any(-1)  # (b, t): true token among the top k
    top1 = topk_ids[..., 0] == true_ids
    return RecoveryCounts(
        misses=(~hit & real).sum(0).float(),  # (t,)
        top1_hits=(top1 & real).sum(0).float(),
        totals=real.sum(0).float(),
    )


def decode_embeddings(embeds: torch.Tensor, embedding_weight: torch.Tensor, method: str = "pinv", k: int = 5) -> torch.Tensor:
    """Top-k token ids (b, t, k), best first, for embeddings (b, t, d) given the (vocab, d) embedding matrix.

    pinv: the token scores s solving E^T s = x in the least-squares sense, s = pinv(E^T) x, i.e. the
    one-hot vector the embedding layer would have needed; nearest: smallest Euclidean distance.
    """
    weight = embedding_weight.detach().float()
    x = embeds.detach().float()
    if method == "pinv":
        scores = x @ torch.linalg.pinv(weight.T).T  # (b, t, d) @ (d, vocab) -> (b, t, vocab)
    elif method == "nearest":
        scores = -torch.cdist(x, weight[None].expand(x.shape[0], -1, -1))  # (b, t, vocab)
    else:
        raise ValueError(f"decode method must be one of {DECODERS}, got {method!r}")
    return scores.topk(min(k, weight.shape[0]), dim=-1).indices


def block_hidden_state(model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, block: int) -> torch.Tensor:
    """The hidden state (b, t, d) after `block` (1 = first block, 0 = the embeddings themselves)."""
    out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, output_hidden_states=True)
    return out.hidden_states[block]


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients for the duration; both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _distance(hidden: torch.Tensor, target: torch.Tensor, real: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean L1 or squared L2 distance over the real positions: (b, t, d) -> scalar."""
    diff = (hidden - target) * real[..., None]
    per_element = diff.abs() if loss == "l1" else diff.pow(2)
    return per_element.sum() / (real.sum() * hidden.shape[-1]).clamp(min=1)


def invert_hidden_state(
    model: nn.Module,
    target: torch.Tensor,
    attention_mask: torch.Tensor | None,
    block: int,
    settings: InversionSettings,
    scale: float,
    on_step=None,
) -> tuple[torch.Tensor, list[float]]:
    """Gradient descent on the input alone until block `block` outputs `target` (b, t, d).

    Returns the recovered embeddings (b, t, d) and the loss at each step. `on_step(loss)` is
    called after every step (progress bars). The model must already be frozen (see `frozen`).
    """
    b, t, d = target.shape
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    z = torch.randn(b, t, d, generator=generator).to(target.device, target.dtype).requires_grad_(True)
    optimizer = OPTIMIZERS[settings.optimizer]([z], lr=settings.learning_rate)
    scheduler = get_scheduler(settings.schedule, optimizer, num_warmup_steps=0, num_training_steps=max(settings.steps, 1))
    real = torch.ones(b, t, device=target.device) if attention_mask is None else attention_mask.to(target.dtype)
    losses = []
    for _ in range(settings.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = _distance(block_hidden_state(model, z * scale, attention_mask, block), target, real, settings.loss)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(losses[-1])
    return (z * scale).detach(), losses


@dataclass
class RepresentationResult:
    """The probe's outcome for one model at one block."""

    block: int
    hamming: float
    top1: float
    per_position: list[float | None]
    final_loss: float | None
    num_tokens: int
    loss_curve: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def representation_accuracy(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    block: int,
    settings: InversionSettings,
    batch_size: int = 8,
    on_step=None,
) -> RepresentationResult:
    """Recover real inputs (input_ids (n, t)) from the hidden state after `block` and score the recovery.

    The loss curve is the mean over batches of each step's loss.
    """
    embedding = model.get_input_embeddings().weight
    scale = float(embedding.detach().float().std())
    counts, curves = None, []
    device = embedding.device
    with frozen(model):
        for start in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[start : start + batch_size].to(device)
            mask = None if attention_mask is None else attention_mask[start : start + batch_size].to(device)
            with torch.no_grad():
                target = block_hidden_state(model, model.get_input_embeddings()(ids), mask, block)
            recovered, losses = invert_hidden_state(model, target, mask, block, settings, scale, on_step)
            topk = decode_embeddings(recovered, embedding, settings.decode, settings.top_k)
            batch_counts = recovery_counts(topk.cpu(), ids.cpu(), None if mask is None else mask.cpu())
            counts = batch_counts if counts is None else counts + batch_counts
            curves.append(losses)
    curve = torch.tensor(curves).mean(0).tolist() if curves and curves[0] else []
    return RepresentationResult(
        block=block,
        hamming=counts.hamming,
        top1=counts.top1,
        per_position=counts.per_position,
        final_loss=curve[-1] if curve else None,
        num_tokens=int(counts.totals.sum()),
        loss_curve=curve,
    )


__all__ = [
    "InversionSettings",
    "RecoveryCounts",
    "RepresentationResult",
    "block_hidden_state",
    "decode_embeddings",
    "frozen",
    "invert_hidden_state",
    "recovery_counts",
    "representation_accuracy",
]
