"""Ranking: candidates for each query, the rank of its positive, top-k accuracy and MRR.

Test pairs are scored all against all into a (queries, passages) matrix whose diagonal holds the
positives. For n candidates, every query gets its positive and n - 1 negatives drawn without
replacement from the other passages (the same draw for every method scored with the same seed,
so methods face identical candidates). Ties with the positive are broken at random, so a method
that scores everything equal (BM25 with no shared term) sits at chance rather than at the top.

Exact search over cached vectors is one matmul (chunked over queries): at the sizes here (up
to 8192 passages) an index such as faiss's exact IndexFlatIP would do the same arithmetic, and an
approximate one would not give the positive's score against sampled negatives that this needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_negatives(
    num_items: int,
    num_negatives: int,
    generator: torch.Generator,
    chunk: int = 1024,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """(rows, num_negatives) indices into num_items; each row distinct indices, never its own.

    Its own index is row i (num_items rows), or `exclude[i]` when given (one row per entry of
    `exclude`: several queries asking for one passage each draw negatives among the others).
    """
    if not 0 <= num_negatives < num_items:
        raise ValueError(f"need fewer negatives than items: {num_negatives} negatives of {num_items} items")
    own_all = torch.arange(num_items) if exclude is None else exclude.long()
    rows = []
    for start in range(0, len(own_all), chunk):
        own = own_all[start : start + chunk, None]  # (c, 1)
        drawn = (
            torch.rand(len(own), num_items - 1, generator=generator).topk(num_negatives, dim=1).indices
        )  # distinct, random order
        rows.append(drawn + (drawn >= own).long())  # skip over own: 0..N-2 -> 0..N-1 without it
    return torch.cat(rows) if rows else torch.empty(0, num_negatives, dtype=torch.long)


def rank_of_target(scores: torch.Tensor, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(batch,) 1-based rank of column `target` in each row of (batch, m) scores, ties at random."""
    positive = scores.gather(1, target[:, None])  # (batch, 1)
    higher = (scores > positive).sum(dim=1)
    ties = (scores == positive).sum(dim=1) - 1  # the positive itself is no tie
    return 1 + higher + (torch.rand(len(ties), generator=generator) * (ties + 1)).long()


def ranking_metrics(ranks: torch.Tensor) -> dict[str, float]:
    ranks = ranks.float()
    return {
        "top1": (ranks <= 1).float().mean().item(),
        "top10": (ranks <= 10).float().mean().item(),
        "mrr": (1.0 / ranks).mean().item(),
    }


def cosine_scores(queries: torch.Tensor, passages: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """(n_queries, n_passages) cosine similarities, computed chunk by chunk of queries."""
    p = F.normalize(passages.float(), dim=-1)
    return torch.cat([F.normalize(q.float(), dim=-1) @ p.T for q in queries.split(chunk)])


def candidate_ranks(
    scores: torch.Tensor, num_candidates: int, seed: int = 0, targets: torch.Tensor | None = None
) -> torch.Tensor:
    """(queries,) rank of each query's positive among itself and n_candidates - 1 negatives.

    scores: (queries, passages); the positive of query i is passage `targets[i]` (default i, the diagonal).
    """
    generator = torch.Generator().manual_seed(seed)
    rows = torch.arange(len(scores))
    targets = rows if targets is None else targets.long()
    negatives = sample_negatives(scores.shape[1], num_candidates - 1, generator, exclude=targets)  # (q, c - 1)
    candidates = torch.cat([targets[:, None], negatives], dim=1)  # (q, c): positive in column 0
    return rank_of_target(scores.gather(1, candidates), torch.zeros_like(rows), generator)


def candidate_counts(num_pairs: int, smallest: int = 32, largest: int = 8192) -> list[int]:
    """32, 64, ... doubling up to `largest` and to what `num_pairs` test pairs allow."""
    counts, n = [], smallest
    while n <= min(largest, num_pairs):
        counts.append(n)
        n *= 2
    return counts


def metrics_vs_candidates(
    scores: torch.Tensor, counts: list[int], seed: int = 0, targets: torch.Tensor | None = None
) -> list[dict[str, float]]:
    """top1, top10, mrr (and chance top-1) for each number of candidates in `counts` (see candidate_ranks)."""
    return [
        {"candidates": n, **ranking_metrics(candidate_ranks(scores, n, seed, targets)), "chance_top1": 1.0 / n}
        for n in counts
        if n <= scores.shape[1]
    ]
