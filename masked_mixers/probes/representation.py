"""Input representation accuracy: how much of its input a model's hidden state still holds.

The paper's probe (Badger, arXiv 2409.01482): take the hidden state after a chosen block for a
real input, then start from random input embeddings and run gradient descent on the input alone
(model frozen) until the model maps it to the same hidden state. If the block kept the input, the
recovered embeddings decode back to the real tokens. Decoding goes through the pseudo-inverse of
the embedding matrix (or the nearest embedding), and the score is a modified Hamming metric: the
fraction of real (non-pad) positions whose true token is not among the top k decoded tokens, so
0 is perfect recovery and 1 recovers nothing.

Blocks are counted from 1 (block n = the last); the target is `hidden_states[block]` of the
model's output with `config.tie_last_hidden_states = False`, transformers' own switch that keeps
the last block's output instead of replacing it with the final norm's: every block, the last
included, is taken before any final norm, in every family (the paper's target).

Two protocols (`PROTOCOLS`), each a complete `InversionSettings`:
- "paper" (the default): the reference code's procedure, protocol F1 of findings.md: start
  x ~ N(0, 1) in embedding coordinates (whatever the embedding's own scale), L1 distance summed
  over every element (pads included), plain gradient descent x <- x - lr_i grad for 500 steps
  with lr_i falling linearly from 0.02 to 0.002 (lr_i = lr (n - i)/n + lr_end i/n), top-5 of
  x @ pinv(E), the metric averaged per sequence then over sequences;
- "adam": an optimizer-robust variant (not the paper's): Adam, cosine schedule, L1 mean over the
  real tokens, start and learning rate in units of the embedding's standard deviation, the metric
  pooled over tokens. Adam's steps do not depend on the gradient's scale, so it recovers inputs
  plain gradient descent cannot reach; it answers "is the input recoverable at all", the paper's
  protocol "is it recoverable by the paper's descent".
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import get_scheduler

LOSSES = ("l1", "l2")
REDUCTIONS = ("sum", "mean")
STARTS = ("normal", "embedding_scale")
AVERAGES = ("sequence", "token")
SCHEDULES = ("constant", "linear", "cosine")
DECODERS = ("pinv", "nearest")
# "sgd" is torch's SGD without momentum or weight decay: exactly x <- x - lr * grad
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class InversionSettings:
    """How the input is recovered and scored; `PROTOCOLS` holds the two named procedures.

    start: "normal" starts from x ~ N(0, 1) and the optimiser moves the embeddings x themselves
      (the paper); "embedding_scale" starts from std * z, z ~ N(0, 1), and moves z, so
      learning_rate is in units of the embedding's standard deviation.
    reduction: "sum" adds the distance over every element, pads included (the paper); "mean"
      averages it over the real tokens' elements.
    schedule "linear" falls from learning_rate to learning_rate * final_lr_fraction over the steps.
    average: "sequence" scores each sequence's real positions and averages the sequences (the
      paper); "token" pools every real position of every sequence.
    """

    protocol: str = "paper"
    steps: int = 500
    learning_rate: float = 0.02
    final_lr_fraction: float = 0.1
    schedule: str = "linear"
    optimizer: str = "sgd"
    loss: str = "l1"
    reduction: str = "sum"
    start: str = "normal"
    average: str = "sequence"
    decode: str = "pinv"
    top_k: int = 5
    seed: int = 0

    def __post_init__(self):
        checks = (
            ("loss", self.loss, LOSSES),
            ("schedule", self.schedule, SCHEDULES),
            ("decode", self.decode, DECODERS),
            ("optimizer", self.optimizer, tuple(OPTIMIZERS)),
            ("reduction", self.reduction, REDUCTIONS),
            ("start", self.start, STARTS),
            ("average", self.average, AVERAGES),
        )
        for name, value, options in checks:
            if value not in options:
                raise ValueError(f"{name} must be one of {options}, got {value!r}")
        if self.steps < 0 or self.top_k < 1 or self.learning_rate <= 0 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError("steps must be >= 0, top_k >= 1, learning_rate > 0 and 0 <= final_lr_fraction <= 1")

    def lr_factor(self, step: int) -> float:
        """The multiple of learning_rate used at `step` (0-based) of a linear schedule: 1 at step 0, falling
        toward final_lr_fraction."""
        n = max(self.steps, 1)
        return (n - step) / n + self.final_lr_fraction * step / n


PROTOCOLS = {
    "paper": InversionSettings(),
    "adam": InversionSettings(
        protocol="adam",
        learning_rate=0.1,
        schedule="cosine",
        optimizer="adam",
        reduction="mean",
        start="embedding_scale",
        average="token",
    ),
}


def protocol_settings(name: str, **changes) -> InversionSettings:
    """The settings of protocol `name` with `changes` (None values ignored); changed settings are labelled a variant."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {name!r}")
    base = PROTOCOLS[name]
    changes = {k: v for k, v in changes.items() if v is not None and v != getattr(base, k)}
    changed = {k: v for k, v in changes.items() if k != "seed"}  # another seed is the same procedure
    label = name if not changed else f"{name} variant (" + ", ".join(f"{k}={v}" for k, v in changed.items()) + ")"
    return dataclasses.replace(base, **changes, protocol=label)


@dataclass
class RecoveryCounts:
    """Tallies that add up over batches: per position misses (true token not in top k), top-1 hits and
    real tokens; per sequence the fraction of its real positions missed (sequences without one left out)."""

    misses: torch.Tensor
    top1_hits: torch.Tensor
    totals: torch.Tensor
    sequence_misses: list[float] = field(default_factory=list)

    def __add__(self, other: RecoveryCounts) -> RecoveryCounts:
        return RecoveryCounts(
            self.misses + other.misses,
            self.top1_hits + other.top1_hits,
            self.totals + other.totals,
            self.sequence_misses + other.sequence_misses,
        )

    @property
    def hamming(self) -> float:
        """Modified Hamming metric pooled over tokens: fraction of all real positions whose true token is not in
        the top k."""
        return float(self.misses.sum() / self.totals.sum().clamp(min=1))

    @property
    def sequence_hamming(self) -> float:
        """The paper's modified Hamming metric: each sequence's fraction of missed real positions, averaged over
        sequences."""
        return sum(self.sequence_misses) / len(self.sequence_misses) if self.sequence_misses else 0.0

    @property
    def top1(self) -> float:
        """Fraction of real positions decoded exactly (top-1)."""
        return float(self.top1_hits.sum() / self.totals.sum().clamp(min=1))

    @property
    def per_position(self) -> list[float | None]:
        """The Hamming metric at each position (None where no sequence has a real token there)."""
        return [None if n == 0 else float(m / n) for m, n in zip(self.misses.tolist(), self.totals.tolist())]


def recovery_counts(
    topk_ids: torch.Tensor, true_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> RecoveryCounts:
    """Score decoded tokens: topk_ids (b, t, k) best first, true_ids (b, t), attention_mask (b, t) 1 = real token."""
    real = torch.ones_like(true_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    hit = (topk_ids == true_ids[..., None]).any(-1)  # (b, t): true token among the top k
    top1 = topk_ids[..., 0] == true_ids
    missed = (~hit & real).sum(1).float()  # (b,)
    length = real.sum(1).float()
    return RecoveryCounts(
        misses=(~hit & real).sum(0).float(),  # (t,)
        top1_hits=(top1 & real).sum(0).float(),
        totals=real.sum(0).float(),
        sequence_misses=[float(m / n) for m, n in zip(missed.tolist(), length.tolist()) if n > 0],
    )


def decode_embeddings(
    embeds: torch.Tensor, embedding_weight: torch.Tensor, method: str = "pinv", k: int = 5
) -> torch.Tensor:
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


def block_hidden_state(
    model: nn.Module, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None, block: int
) -> torch.Tensor:
    """The hidden state (b, t, d) after `block` (1 = first block, 0 = the embeddings), before any final norm.

    transformers' models replace the last entry of `hidden_states` with the final norm's output
    unless `config.tie_last_hidden_states` is False (the package's own models with a final norm
    follow the same switch); it is set False for this forward only.
    """
    config = model.config
    had, before = "tie_last_hidden_states" in config.__dict__, getattr(config, "tie_last_hidden_states", None)
    config.tie_last_hidden_states = False
    try:
        out = model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, output_hidden_states=True)
    finally:
        if had:
            config.tie_last_hidden_states = before
        else:
            del config.tie_last_hidden_states
    if out.hidden_states is None:
        raise ValueError(f"{type(model).__name__} does not return hidden_states, which the probe needs")
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


def _distance(
    hidden: torch.Tensor, target: torch.Tensor, real: torch.Tensor, loss: str, reduction: str
) -> torch.Tensor:
    """L1 or squared L2 distance, (b, t, d) -> scalar: summed over every element (pads too), or the mean over
    real positions."""
    diff = hidden - target
    if reduction == "mean":
        diff = diff * real[..., None]
    per_element = diff.abs() if loss == "l1" else diff.pow(2)
    if reduction == "sum":
        return per_element.sum()
    return per_element.sum() / (real.sum() * hidden.shape[-1]).clamp(min=1)


def _scheduler(optimizer: torch.optim.Optimizer, settings: InversionSettings):
    if settings.schedule == "linear":  # to learning_rate * final_lr_fraction, not to 0 as transformers' linear schedule
        return torch.optim.lr_scheduler.LambdaLR(optimizer, settings.lr_factor)
    return get_scheduler(settings.schedule, optimizer, num_warmup_steps=0, num_training_steps=max(settings.steps, 1))


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

    `scale` is the embedding's standard deviation, used where settings.start is "embedding_scale".
    Returns the recovered embeddings (b, t, d) and the loss at each step. `on_step(loss)` is
    called after every step (progress bars). The model must already be frozen (see `frozen`).
    """
    b, t, d = target.shape
    scale = scale if settings.start == "embedding_scale" else 1.0
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    z = torch.randn(b, t, d, generator=generator).to(target.device, target.dtype).requires_grad_(True)
    optimizer = OPTIMIZERS[settings.optimizer]([z], lr=settings.learning_rate)
    scheduler = _scheduler(optimizer, settings)
    real = torch.ones(b, t, device=target.device) if attention_mask is None else attention_mask.to(target.dtype)
    losses = []
    for _ in range(settings.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = _distance(
            block_hidden_state(model, z * scale, attention_mask, block), target, real, settings.loss, settings.reduction
        )
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
    hamming: float  # the protocol's metric (settings.average)
    hamming_sequences: float  # averaged per sequence (the paper's)
    hamming_tokens: float  # pooled over tokens
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
        hamming=counts.sequence_hamming if settings.average == "sequence" else counts.hamming,
        hamming_sequences=counts.sequence_hamming,
        hamming_tokens=counts.hamming,
        top1=counts.top1,
        per_position=counts.per_position,
        final_loss=curve[-1] if curve else None,
        num_tokens=int(counts.totals.sum()),
        loss_curve=curve,
    )


__all__ = [
    "AVERAGES",
    "PROTOCOLS",
    "REDUCTIONS",
    "STARTS",
    "InversionSettings",
    "RecoveryCounts",
    "RepresentationResult",
    "block_hidden_state",
    "decode_embeddings",
    "frozen",
    "invert_hidden_state",
    "protocol_settings",
    "recovery_counts",
    "representation_accuracy",
]
