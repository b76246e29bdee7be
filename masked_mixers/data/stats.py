"""The unigram baseline of prepared examples.

The unigram baseline is the loss of a model that ignores context and predicts every token with
its training-set frequency. A language model that does not get clearly below it has learned
nothing about context; the training tests use it as the bar to clear.

Counts, examples, tokens and bytes of each split come from the shard records (shards.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import numpy as np

from .examples import IGNORE_INDEX


def _label_rows(dataset: datasets.Dataset, batch_size: int = 4096) -> Iterator[np.ndarray]:
    """Labels as (batch, L) arrays, read slice by slice (a compact store expands each slice)."""
    for start in range(0, len(dataset), batch_size):
        yield np.asarray(dataset[start : start + batch_size]["labels"], dtype=np.int64)


def token_counts(dataset: datasets.Dataset) -> np.ndarray:
    """How often each id occurs among the labelled (real) tokens of `dataset`."""
    counts = np.zeros(0, dtype=np.int64)
    for labels in _label_rows(dataset):
        grown = np.bincount(labels[labels != IGNORE_INDEX], minlength=len(counts))
        grown[: len(counts)] += counts
        counts = grown
    return counts


def stored_token_counts(dataset: datasets.Dataset) -> np.ndarray:
    """token_counts of a compact store, read straight from its memory-mapped id column.

    A compact store holds exactly the real tokens, so no example needs expanding: this is a
    vectorised pass per Arrow chunk, fast enough for billions of tokens.
    """
    counts = np.zeros(0, dtype=np.int64)
    for chunk in dataset.data.column("input_ids").chunks:
        ids = chunk.flatten().to_numpy(zero_copy_only=False)
        grown = np.bincount(ids, minlength=len(counts))
        grown[: len(counts)] += counts
        counts = grown
    return counts


def unigram_baseline_from_counts(counts: np.ndarray, eval: datasets.Dataset, vocab_size: int | None = None) -> float:
    """Cross-entropy (nats per predicted token) of eval's tokens under the unigram `counts`.

    Add-one smoothing over `vocab_size` tokens (default: the largest id seen + 1). Counted like
    a causal LM's loss: eval positions 1.. of each example whose label is not -100.
    """
    targets = [labels[:, 1:][labels[:, 1:] != IGNORE_INDEX] for labels in _label_rows(eval)]
    targets = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
    if not len(targets):
        raise ValueError("unigram_baseline: the eval set has no predicted tokens")
    size = max(vocab_size or 0, len(counts), int(targets.max()) + 1)
    counts = np.pad(counts, (0, size - len(counts)))
    log_probs = np.log(counts + 1.0) - np.log(counts.sum() + size)
    return float(-log_probs[targets].mean())


def unigram_baseline(train: datasets.Dataset, eval: datasets.Dataset, vocab_size: int | None = None) -> float:
    """unigram_baseline_from_counts with train's token frequencies (any dataset with labels)."""
    return unigram_baseline_from_counts(token_counts(train), eval, vocab_size)
