"""Okapi BM25, the lexical baseline, as a (queries, passages) score matrix.

A small implementation rather than rank_bm25: that package scores one query at a time in
Python, while the ranking code here wants every query against every passage as one matrix (the
same shape as the cosine scores), which a sparse term-weight matrix gives in one product.

score(q, p) = sum over terms t of q (with repeats) of
    idf(t) * tf(t, p) * (k1 + 1) / (tf(t, p) + k1 * (1 - b + b * |p| / avg|p|))
with the non-negative idf(t) = log(1 + (N - df(t) + 0.5) / (df(t) + 0.5)) of Lucene.
Terms are lowercase runs of letters and digits.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch

_TERM = re.compile(r"\w+")


def terms(text: str) -> list[str]:
    return _TERM.findall(text.lower())


def bm25_scores(
    queries: Sequence[str], passages: Sequence[str], k1: float = 1.5, b: float = 0.75, chunk: int = 1024
) -> torch.Tensor:
    """(len(queries), len(passages)) BM25 scores of every query against every passage."""
    counts = [Counter(terms(p)) for p in passages]
    vocab: dict[str, int] = {}
    for c in counts:
        for term in c:
            vocab.setdefault(term, len(vocab))
    lengths = torch.tensor([sum(c.values()) for c in counts], dtype=torch.float32)
    avg_length = lengths.mean().clamp(min=1.0)
    df = Counter(term for c in counts for term in c)
    n = len(passages)
    idf = torch.tensor([math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in vocab])

    doc, term, tf = (
        zip(*((d, vocab[t], f) for d, c in enumerate(counts) for t, f in c.items())) if vocab else ((), (), ())
    )
    doc, term, tf = (
        torch.tensor(doc, dtype=torch.long),
        torch.tensor(term, dtype=torch.long),
        torch.tensor(tf, dtype=torch.float32),
    )
    norm = k1 * (1 - b + b * lengths[doc] / avg_length)
    weight = idf[term] * tf * (k1 + 1) / (tf + norm)
    # (passages, vocab) sparse term weights
    weights = torch.sparse_coo_tensor(
        torch.stack([doc, term]), weight, (n, len(vocab)), check_invariants=True
    ).coalesce()

    scores = []
    for start in range(0, len(queries), chunk):
        q = torch.zeros(len(vocab), len(queries[start : start + chunk]))  # (vocab, c): query term counts
        for j, text in enumerate(queries[start : start + chunk]):
            for t, f in Counter(terms(text)).items():
                if t in vocab:
                    q[vocab[t], j] = f
        scores.append(torch.sparse.mm(weights, q).T)  # (c, passages)
    return torch.cat(scores) if scores else torch.empty(0, n)
