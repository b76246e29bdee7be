"""Size matching by measured training memory (the paper's setting: a d_model=1024 mixer against a
d_model=512 Llama use about the same GPU memory).

Memory is measured, never estimated: a fresh model of each candidate size runs a few real AdamW
steps at the configured batch and seq_len inside a peak-memory tracker (CUDA's allocator peak on
a GPU, live tensor storage bytes elsewhere; see masked_mixers/training/memory.py). Peak memory grows with
hidden_size, so a bracket-and-bisect search over multiples of `multiple_of` needs few measurements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from ..core.errors import UserError
from ..core.progress import progress_bar
from ..models import FAMILIES
from ..runs.config import ModelSpec
from ..runs.factory import build_model
from ..training.memory import PeakMemory, TensorPeakMemory
from .config import MatchingConfig


@dataclass
class SizeMatch:
    """One resized model: its new spec, the reference it matches and every measurement taken."""

    spec: ModelSpec
    reference: str
    reference_bytes: int
    peak_bytes: int
    measurements: dict[int, int] = field(default_factory=dict)  # hidden_size -> peak bytes

    @property
    def relative_gap(self) -> float:
        return abs(self.peak_bytes - self.reference_bytes) / self.reference_bytes


def _tracker():
    return PeakMemory() if torch.cuda.is_available() else TensorPeakMemory()


def measure_training_memory(
    spec: ModelSpec, batch: dict[str, torch.Tensor], vocab_size: int, steps: int = 2, bf16: bool = False
) -> int:
    """Peak bytes of building a model of `spec` and running `steps` AdamW steps on `batch`.

    batch: input_ids / attention_mask / labels of shape (batch_size, seq_len), as training sees them.
    The model is built inside the measured block, so parameters, gradients, optimizer state and
    activations all count.
    """
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = {k: v.to(device) for k, v in batch.items()}
    torch.manual_seed(0)
    with _tracker() as tracker:
        model, _ = build_model(spec, vocab_size)
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(steps):
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        del model, optimizer, loss
    return int(tracker.bytes)


def _step(spec: ModelSpec, multiple_of: int) -> int:
    """hidden_size granularity: a multiple of `multiple_of` that the heads also divide."""
    return math.lcm(multiple_of, FAMILIES[spec.family].size_multiple(spec))


def match_memory(
    spec: ModelSpec,
    target_bytes: int,
    measure: Callable[[ModelSpec], int],
    settings: MatchingConfig,
    reference: str = "reference",
) -> SizeMatch:
    """The hidden_size of `spec` whose measured peak memory is closest to `target_bytes`.

    Raises UserError when even the closest size misses by more than settings.tolerance.
    """
    step = _step(spec, settings.multiple_of)
    top = max(1, settings.max_hidden_size // step)
    seen: dict[int, int] = {}

    def mem(k: int) -> int:
        if k * step not in seen:
            seen[k * step] = measure(replace(spec, hidden_size=k * step))
        return seen[k * step]

    lo, hi = 0, None  # mem(lo) < target <= mem(hi); k=0 stands for "nothing smaller"
    k = min(top, max(1, round(spec.hidden_size / step)))
    while hi is None:  # bracket by doubling up or halving down
        if mem(k) >= target_bytes:
            hi = k
        elif k == top:
            break
        else:
            lo, k = k, min(top, 2 * k)
    while hi is not None and lo == 0 and hi > 1:
        k = hi // 2
        if mem(k) >= target_bytes:
            hi = k
        else:
            lo = k
    while hi is not None and hi - lo > 1:  # bisect
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if mem(mid) < target_bytes else (lo, mid)
    candidates = [c for c in (lo, hi) if c]
    best = min(candidates, key=lambda c: abs(mem(c) - target_bytes))
    match = SizeMatch(
        replace(spec, hidden_size=best * step), reference, target_bytes, mem(best), dict(sorted(seen.items()))
    )
    if match.relative_gap > settings.tolerance:
        raise UserError(
            f"matching: no hidden_size for {spec.label} comes within {settings.tolerance:.0%} of {reference}'s "
            f"{target_bytes / 2**20:.1f} MiB (closest: d={match.spec.hidden_size}, {match.peak_bytes / 2**20:.1f} "
            "MiB); "
            "change matching.multiple_of or the reference size"
        )
    return match


def _reference_for(index: int, models: list[ModelSpec], family: str) -> int:
    """The reference-family model of the same seq_len: the last one listed before, else the first."""
    same = [i for i, m in enumerate(models) if m.family == family and m.seq_len == models[index].seq_len]
    if not same:
        raise UserError(
            f"matching.reference: no '{family}' model with seq_len {models[index].seq_len} to match "
            f"{models[index].label} against"
        )
    before = [i for i in same if i < index]
    return before[-1] if before else same[0]


def match_models(
    models: list[ModelSpec], settings: MatchingConfig, measure: Callable[[ModelSpec], int], progress: bool = True
) -> tuple[list[ModelSpec], list[SizeMatch]]:
    """Resize every non-reference model to its reference's measured memory; references stay as written."""
    resized, matches, reference_bytes = list(models), [], {}
    todo = [i for i, m in enumerate(models) if m.family != settings.reference]
    for i in progress_bar(todo, desc="size matching", disable=not progress):
        ref = _reference_for(i, models, settings.reference)
        if ref not in reference_bytes:
            reference_bytes[ref] = measure(models[ref])
        match = match_memory(models[i], reference_bytes[ref], measure, settings, reference=models[ref].label)
        resized[i] = match.spec
        matches.append(match)
    return resized, matches
