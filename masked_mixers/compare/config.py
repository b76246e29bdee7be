"""The compare schema: several models trained on the same tokens for the same budget.

A compare config is a run config whose `model` became `models` (a list), plus what only a
comparison needs: per-family optimisation overrides, size matching, the report's samples and the
retrieval task. It reuses the run schema's sections (config.py) and the retrieval settings
(retrieval/settings.py), and loads through the same checked YAML loader (configfile.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from ..core.configfile import at_least, load_config, require, seeds
from ..retrieval.settings import RetrievalSettings
from ..runs.config import DataConfig, ModelSpec, TrainConfig, check_scheduler

SizeMatching = Literal["identical", "memory"]


@dataclass
class TrainOverrides:
    """Optimisation settings one model family may change in a comparison (null keeps the shared value).

    The batch and sequence length stay shared, so every model reads the same token stream. The
    paper tunes the learning rate per family (5e-4 mixer, 2e-4 Llama). max_steps and eval_steps
    are a family's own step limit and evaluation interval, for a budget that gives families
    different steps (reproduce's F4 sets them to the steps an equal compute-time budget is expected
    to give, so each schedule and its warmup_ratio end where its budget does); the report's steps
    column shows them.
    """

    learning_rate: float | None = None
    lr_scheduler: str | None = None
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    max_steps: int | None = None
    eval_steps: int | None = None
    weight_decay: float | None = None
    adam_beta1: float | None = None
    adam_beta2: float | None = None
    max_grad_norm: float | None = None

    def validate(self) -> None:
        """The same ranges as TrainConfig's keys of the same names."""
        require(
            self.learning_rate is None or (math.isfinite(self.learning_rate) and self.learning_rate > 0),
            "learning_rate",
            self.learning_rate,
            "must be a finite positive number",
        )
        at_least(self, 0, "warmup_steps", "weight_decay", "max_grad_norm", "eval_steps", optional=True)
        at_least(self, 1, "max_steps", optional=True)
        ratio = self.warmup_ratio
        require(ratio is None or 0 <= ratio < 1, "warmup_ratio", ratio, "must be in [0, 1)")
        for key in ("adam_beta1", "adam_beta2"):
            value = getattr(self, key)
            require(value is None or 0 <= value < 1, key, value, "must be in [0, 1)")
        if self.lr_scheduler is not None:
            check_scheduler(self.lr_scheduler)


@dataclass
class MatchingConfig:
    """How `size_matching: memory` searches sizes.

    Each model whose family is not `reference` gets the hidden_size (a multiple of `multiple_of`)
    whose measured peak training memory (`steps` real optimizer steps at the configured batch and
    seq_len) is closest to that of the reference-family model of the same seq_len; the match must
    fall within `tolerance` (relative) or the comparison stops with an error.
    """

    reference: str = "llama"
    tolerance: float = 0.15
    steps: int = 2
    multiple_of: int = 32
    max_hidden_size: int = 8192

    def validate(self) -> None:
        require(
            math.isfinite(self.tolerance) and self.tolerance > 0,
            "tolerance",
            self.tolerance,
            "must be a finite positive number",
        )
        at_least(self, 1, "steps", "multiple_of", "max_hidden_size")


@dataclass
class ReportConfig:
    """What the comparison report shows besides the table: samples from every language model for
    `prompts`; for autoencoders, the first `reconstructions` held-out examples and their rebuilds.
    """

    prompts: list[str] = field(default_factory=lambda: ["once upon a time", "the little dog"])
    max_new_tokens: int = 24
    temperature: float = 0.8
    top_k: int = 50
    sample_seed: int = 0
    reconstructions: int = 3

    def validate(self) -> None:
        require(
            math.isfinite(self.temperature) and self.temperature > 0,
            "temperature",
            self.temperature,
            "must be a finite positive number",
        )
        at_least(self, 0, "max_new_tokens", "top_k", "reconstructions")
        seeds(self, "sample_seed")


@dataclass
class RetrievalTaskConfig(RetrievalSettings):
    """The retrieval task of a comparison (see compare/retrieval.py and docs/retrieval.md).

    When enabled, every model of the comparison, once trained as a language model, is benchmarked
    on (query, passage) pairs built from held-out documents, with BM25 on the same pairs.
    source: null builds pairs from the comparison's held-out documents: data.eval_source when set,
      else the documents of data.source after the first data.max_documents (those trained on).
    num_documents: documents read for pairs. include_training_documents: also build pairs from the
    documents the models trained on (data.source, up to data.max_documents), as the paper does (its
    pairs come from the TinyStories its models learned); the split stays by document. Every other
    key is a `RetrievalSettings` field (pair kind and split, queries per document, methods,
    candidates, ...), shared with the pairs/embed/retrieve commands.
    """

    enabled: bool = False
    source: str | list[str] | None = None
    num_documents: int = 1000
    include_training_documents: bool = False


@dataclass
class CompareConfig:
    """Several models trained on the same tokens for the same budget (train.max_steps / max_seconds /
    max_compute_seconds / max_flops).

    size_matching: "identical" trains the specs as written (give both families the same
      hidden_size and num_hidden_layers); "memory" resizes non-reference models to the reference's
      measured peak training memory (see MatchingConfig).
    per_family: optimisation overrides keyed by family ("mixer", "llama") or by a model's label.
    The task (language modelling or autoencoding) follows from the families; all models share it.
    Data is prepared once per distinct seq_len and shared by the models of that length.
    """

    models: list[ModelSpec] = field(default_factory=lambda: [ModelSpec(family="mixer"), ModelSpec(family="llama")])
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    per_family: dict[str, TrainOverrides] = field(default_factory=dict)
    size_matching: SizeMatching = "identical"
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    retrieval: RetrievalTaskConfig = field(default_factory=RetrievalTaskConfig)

    def validate(self) -> None:
        require(len(self.models) >= 1, "models", self.models, "must list at least one model")


def load_compare_config(path: str | os.PathLike, overrides: list[str] | None = None) -> CompareConfig:
    """Read a compare config YAML (`models` is a list) with the same key checking as run configs."""
    return load_config(CompareConfig, path, overrides, what="sections (models, data, train, ...)")


__all__ = [
    "CompareConfig",
    "MatchingConfig",
    "ReportConfig",
    "RetrievalTaskConfig",
    "SizeMatching",
    "TrainOverrides",
    "load_compare_config",
]
