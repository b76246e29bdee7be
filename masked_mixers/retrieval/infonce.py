"""InfoNCE fine-tuning of a language model into a text embedder (the whole model is trained).

Two variants (`RetrievalSettings.infonce_variant`):

- "paper" (default), as the paper's F5 runs it and as its reference code does
  (github.com/blbadger/maskedmixers, mixer_lm/infonce_retrieval.py: `RetrievalDataset` puts one
  summary first and the matching text at a random slot among texts drawn without replacement
  from all the others; `infoNCEloss` with temp = 0.02): each step embeds ONE query and
  `candidates` passages (its positive at a random slot, the rest drawn from the other documents'
  passages), and the loss is -log f(q, d+) / sum over the candidates of f(q, d), with
  f = exp(cos / temperature). F5 states 31 candidates per step; the reference file at the commit
  read fills 127 (batch_size=128), so the number is a setting (`infonce_candidates`, default 31).
  Like the reference (HF Trainer defaults: AdamW, linear warmup and decay, max_grad_norm 1.0),
  the learning rate warms up linearly (first 10% of steps) and decays linearly to 0, and
  gradients are clipped at norm 1.
- "in-batch": a batch of pairs, every query against every passage of the batch; the other
  passages of the batch are its negatives.

Texts are laid out as `embed` lays them out (`tokenize_for`: the model's own padding side, the
side its saved tokenizer was trained with for the mixers), and embedded at the same position.
A plain loop rather than the HF Trainer: one step is one query and its candidates through the
same model, with candidates drawn afresh each step, which is the whole of the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers import get_linear_schedule_with_warmup

from ..core.progress import progress_bar
from .embedding import embed_batch, tokenize_for
from .metrics import sample_negatives
from .pairs import Pair, passage_index


def info_nce_loss(queries: torch.Tensor, passages: torch.Tensor, temperature: float) -> torch.Tensor:
    """In-batch: cross entropy of (b, b) cosine similarities / temperature against the diagonal."""
    logits = F.normalize(queries, dim=-1) @ F.normalize(passages, dim=-1).T / temperature  # (b, b)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def candidates_nce_loss(
    query: torch.Tensor, candidates: torch.Tensor, positive: int, temperature: float
) -> torch.Tensor:
    """Paper: -log f(q, d+) / sum_j f(q, d_j) for one (d,) query and (m, d) candidates, f = exp(cos / temperature).

    Computed as the cross entropy of cos / temperature (the same value, without overflowing exp).
    """
    logits = F.cosine_similarity(query[None], candidates, dim=-1) / temperature  # (m,)
    return F.cross_entropy(logits[None], torch.tensor([positive], device=logits.device))


def _paper_step(model, queries, passages, query, target, num_candidates, temperature, position, generator, device):
    """Loss of one query against its positive and num_candidates - 1 negatives, all in one forward pass."""
    negatives = sample_negatives(len(passages["input_ids"]), num_candidates - 1, generator, exclude=target[None])[0]
    slot = int(torch.randint(num_candidates, (1,), generator=generator))
    rows = torch.cat([negatives[:slot], target[None], negatives[slot:]])  # (m,) the positive at `slot`
    ids = torch.cat([queries["input_ids"][query][None], passages["input_ids"][rows]])  # (1 + m, width)
    mask = torch.cat([queries["attention_mask"][query][None], passages["attention_mask"][rows]])
    embedded = embed_batch(model, ids.to(device), mask.to(device), position)  # (1 + m, d)
    return candidates_nce_loss(embedded[0], embedded[1:], slot, temperature)


def finetune_infonce(
    model,
    tokenizer,
    pairs: Sequence[Pair],
    position: str = "second-to-last",
    steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    temperature: float = 0.02,
    max_length: int | None = None,
    seed: int = 0,
    progress: bool = True,
    variant: str = "paper",
    candidates: int = 31,
) -> list[dict]:
    """Fine-tune `model` in place on `pairs` (see the module docstring); returns the loss of every step."""
    passages_text, targets = passage_index(pairs)
    targets = torch.tensor(targets)
    if variant == "paper" and len(passages_text) < candidates:
        raise ValueError(f"InfoNCE (paper) needs {candidates} distinct passages, the pairs have {len(passages_text)}")
    if variant == "in-batch" and len(pairs) < 2:
        raise ValueError("InfoNCE needs at least 2 pairs (a positive and an in-batch negative)")
    device = next(model.parameters()).device
    queries = tokenize_for(
        model, tokenizer, [p.query for p in pairs], max_length
    )  # (n, width), laid out as embed_texts does
    passages = tokenize_for(model, tokenizer, passages_text, max_length)  # (D, width)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, steps // 10), steps)
    per_step = 1 if variant == "paper" else batch_size
    model.train()
    history, order = [], torch.empty(0, dtype=torch.long)
    for step in progress_bar(range(1, steps + 1), desc=f"infonce ({variant})", disable=not progress):
        if len(order) < min(per_step, len(pairs)):  # a new epoch: reshuffle
            order = torch.randperm(len(pairs), generator=generator)
        batch, order = order[:per_step], order[per_step:]
        if variant == "paper":
            loss = _paper_step(
                model,
                queries,
                passages,
                int(batch[0]),
                targets[batch[0]],
                candidates,
                temperature,
                position,
                generator,
                device,
            )
        else:
            q = embed_batch(
                model, queries["input_ids"][batch].to(device), queries["attention_mask"][batch].to(device), position
            )
            rows = targets[batch]
            p = embed_batch(
                model, passages["input_ids"][rows].to(device), passages["attention_mask"][rows].to(device), position
            )
            loss = info_nce_loss(q, p, temperature)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        history.append({"step": step, "loss": loss.item()})
    model.eval()
    return history
