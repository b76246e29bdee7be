"""Summaries of prepared examples: token and byte counts, and the unigram baseline.

The unigram baseline is the loss of a model that ignores context and predicts every token with
its training-set frequency. A language model that does not get clearly below it has learned
nothing about context; the training tests use it as the bar to clear.
"""

from __future__ import annotations

from collections.abc import Iterator

import datasets
import numpy as np
import pyarrow.compute as pc

from .examples import IGNORE_INDEX


def _label_rows(dataset: datasets.Dataset, batch_size: int = 4096) -> Iterator[np.ndarray]:
    """Labels as (batch, L) arrays, read batch by batch from the memory-mapped table."""
    for batch in dataset.select_columns(["labels"]).with_format("numpy").iter(batch_size=batch_size):
        yield np.asarray(batch["labels"], dtype=np.int64)


def unigram_baseline(train: datasets.Dataset, eval: datasets.Dataset, vocab_size: int | None = None) -> float:
    """Cross-entropy (nats per predicted token) of eval's tokens under train's unigram distribution.

    Add-one smoothing over `vocab_size` tokens (default: the largest id seen + 1). Counted like
    a causal LM's loss: eval positions 1.. of each example whose label is not -100.
    """
    counts = np.zeros(0, dtype=np.int64)
    for labels in _label_rows(train):
        real = labels[labels != IGNORE_INDEX]
        grown = np.bincount(real, minlength=len(counts))
        grown[: len(counts)] += counts
        counts = grown
    targets = [labels[:, 1:][labels[:, 1:] != IGNORE_INDEX] for labels in _label_rows(eval)]
    targets = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
    if not len(targets):
        raise ValueError("unigram_baseline: the eval set has no predicted tokens")
    size = max(vocab_size or 0, len(counts), int(targets.max()) + 1)
    counts = np.pad(counts, (0, size - len(counts)))
    log_probs = np.log(counts + 1.0) - np.log(counts.sum() + size)
    return float(-log_probs[targets].mean())


def split_stats(dataset: datasets.Dataset, batch_size: int = 4096) -> dict:
    """Examples, real tokens and covered UTF-8 bytes of one prepared split, read batch by batch."""
    tokens = nbytes = 0
    for batch in dataset.select_columns(["attention_mask", "num_bytes"]).with_format("arrow").iter(batch_size=batch_size):
        tokens += pc.sum(pc.list_flatten(batch.column("attention_mask"))).as_py() or 0
        nbytes += pc.sum(batch.column("num_bytes")).as_py() or 0
    return {"examples": len(dataset), "tokens": tokens, "bytes": nbytes}
