"""InfoNCE fine-tuning of a language model into a text embedder.

Each step embeds a batch of queries and their passages (the position chosen as for `embed`),
scores every query against every passage of the batch by cosine similarity divided by a
temperature, and takes the cross entropy of each query's own passage: the other passages of the
batch are its negatives (in-batch negatives). The whole language model is trained; its LM head
is left as it was and unused.

A plain loop rather than the HF Trainer: the loss needs both sides of the pair through the same
model in one step and the batch itself as the negatives, which is the whole of the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .embedding import embed_batch, tokenize_for
from .pairs import Pair


def info_nce_loss(queries: torch.Tensor, passages: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross entropy of (b, b) cosine similarities / temperature against the diagonal."""
    logits = F.normalize(queries, dim=-1) @ F.normalize(passages, dim=-1).T / temperature  # (b, b)
    return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def finetune_infonce(
    model,
    tokenizer,
    pairs: Sequence[Pair],
    position: str = "second-to-last",
    steps: int = 200,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    temperature: float = 0.05,
    max_length: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Fine-tune `model` in place on `pairs`; returns the loss of every step."""
    if len(pairs) < 2:
        raise ValueError("InfoNCE needs at least 2 pairs (a positive and an in-batch negative)")
    device = next(model.parameters()).device
    queries = tokenize_for(model, tokenizer, [p.query for p in pairs], max_length)  # (n, width), laid out as embed_texts does
    passages = tokenize_for(model, tokenizer, [p.passage for p in pairs], max_length)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    history, order = [], torch.empty(0, dtype=torch.long)
    for step in tqdm(range(1, steps + 1), desc="infonce", disable=not progress):
        if len(order) < min(batch_size, len(pairs)):  # a new epoch: reshuffle
            order = torch.randperm(len(pairs), generator=generator)
        batch, order = order[:batch_size], order[batch_size:]
        q = embed_batch(model, queries["input_ids"][batch].to(device), queries["attention_mask"][batch].to(device), position)
        p = embed_batch(model, passages["input_ids"][batch].to(device), passages["attention_mask"][batch].to(device), position)
        loss = info_nce_loss(q, p, temperature)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.append({"step": step, "loss": loss.item()})
    model.eval()
    return history
