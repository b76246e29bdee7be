"""Is a retrieval result above chance? An exact one-sided binomial test on top-1 hits.

Each test query's positive sits at a uniformly random slot among n candidates (the direct
model's `candidate_batch`, or the candidate draw of `metrics.candidate_ranks` with random tie
breaks). So under the null hypothesis "the scores carry no information about which candidate is
the positive", every query's top-1 hit is an independent Bernoulli(1/n) draw, whatever the model
does with positions, and the number of hits of N queries is Binomial(N, 1/n). The p-value is
P(X >= hits). The cross entropy against ln n is reported beside it with its standard error
(queries of one document are correlated, so that error is a rough guide; the binomial test is
the one the flag uses).

Hand-written rather than scipy.stats.binomtest: scipy is not a dependency of this package, and
the upper tail of a binomial is a short sum in log space.
"""

from __future__ import annotations

import math


def binomial_upper_tail(hits: int, trials: int, p: float) -> float:
    """P(X >= hits) for X ~ Binomial(trials, p), summed in log space (exact for these sizes)."""
    if not 0 <= hits <= trials or not 0 < p < 1:
        raise ValueError(f"need 0 <= hits <= trials and 0 < p < 1, got {hits}, {trials}, {p}")
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1) + k * log_p + (trials - k) * log_q
        for k in range(hits, trials + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def chance_test(hits: int, trials: int, candidates: int, significance: float = 0.01) -> dict:
    """The binomial test of `hits` top-1 hits in `trials` queries of `candidates` candidates each."""
    p_value = binomial_upper_tail(hits, trials, 1.0 / candidates)
    return {
        "hits": hits,
        "queries": trials,
        "chance_top1": 1.0 / candidates,
        "p_value": p_value,
        "beats_chance": p_value < significance,
    }


__all__ = ["binomial_upper_tail", "chance_test"]
