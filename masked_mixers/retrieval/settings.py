"""The retrieval settings, defined once: the `retrieval` section of a compare config and the
options of the `pairs`, `embed` and `retrieve` commands are all generated from `RetrievalSettings`.

Before, the compare config, the commands and the benchmark's keyword defaults each kept their
own copy, and the defaults had drifted apart (methods, test_fraction). Now a default changes in
one place, the CLI help is each field's `help`, and the closed choices (pair kind, methods,
position) are `Literal` types that the config loader checks and argparse offers as `choices`.

The choice vocabularies live here, not in the modules that implement them, so this module stays
free of torch: loading a config or building a parser must not import a model stack.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from ..core.configfile import InvalidValue, at_least, require, seeds
from ..core.errors import UserError

PairKind = Literal["sentence", "keywords"]
Method = Literal["cosine", "direct", "infonce"]
Position = Literal["second-to-last", "last-token", "last"]
InfoNCEVariant = Literal["paper", "in-batch"]
MixingInit = Literal["exchangeable", "uniform"]
DirectStop = Literal["fixed", "plateau"]

PAIR_KINDS: tuple[str, ...] = typing.get_args(PairKind)
METHODS: tuple[str, ...] = typing.get_args(Method)
POSITIONS: tuple[str, ...] = typing.get_args(Position)
INFONCE_VARIANTS: tuple[str, ...] = typing.get_args(InfoNCEVariant)
MIXING_INITS: tuple[str, ...] = typing.get_args(MixingInit)
DIRECT_STOPS: tuple[str, ...] = typing.get_args(DirectStop)


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class RetrievalSettings:
    """How pairs are built and split, and how the language models are benchmarked on them.

    See docs/retrieval.md for the method; every field's `help` is also its CLI option's help.
    """

    kind: PairKind = field(
        default="sentence",
        metadata=_help(
            "sentence: one sentence -> the rest of the document; keywords: a few content words -> the document "
            "without them"
        ),
    )
    min_query_words: int = field(default=5, metadata=_help("sentence: shortest sentence used as a query"))
    num_keywords: int = field(default=3, metadata=_help("keywords: words per query"))
    queries_per_document: int = field(
        default=1,
        metadata=_help(
            "sentence: query sentences per document, all asking for one passage (the document without any of them); "
            "the split is by document"
        ),
    )
    test_fraction: float = field(
        default=0.2, metadata=_help("fraction of the pairs held out for testing (seeded split)")
    )
    max_test: int | None = field(default=None, metadata=_help("cap on the number of test pairs"))
    candidates: list[int] | None = field(
        default=None, metadata=_help("numbers of candidate passages (default 32, 64, ... up to the test pairs)")
    )
    methods: list[Method] = field(
        default_factory=lambda: ["cosine", "direct"],
        metadata=_help(
            "cosine: embeddings as trained; direct: retrieval mixer on frozen embeddings; infonce: fine-tune, then "
            "cosine"
        ),
    )
    position: Position = field(default="second-to-last", metadata=_help("which token's hidden state embeds a text"))
    batch_size: int = field(default=32, metadata=_help("texts embedded per batch"))
    max_length: int | None = field(
        default=None, metadata=_help("truncate inputs to this many tokens (default: the model's context)")
    )
    direct_candidates: list[int] = field(
        default_factory=lambda: [31],
        metadata=_help(
            "direct: numbers of candidate passages the retrieval mixer is trained and tested at; the query is not "
            "counted: the reference's n_context = candidates + 1 (default 31: n_context 32, chance ln 31)"
        ),
    )
    direct_epochs: int = field(
        default=200, metadata=_help("direct: training epochs of the retrieval mixer (the reference: a fixed 200)")
    )
    direct_stop: DirectStop = field(
        default="fixed",
        metadata=_help(
            "direct: fixed: every one of direct_epochs epochs (the reference); plateau: a variant that stops once the "
            "train loss stops falling (direct_patience, direct_min_delta)"
        ),
    )
    direct_patience: int = field(
        default=5,
        metadata=_help(
            "direct (plateau): stop after this many epochs without the train loss falling by direct_min_delta below "
            "its best"
        ),
    )
    direct_min_delta: float = field(
        default=1e-3, metadata=_help("direct (plateau): the fall of the train loss (nats) that counts as progress")
    )
    direct_layers: int = field(default=8, metadata=_help("direct: mixer blocks of the retrieval model (reference: 8)"))
    direct_hidden_size: int | None = field(
        default=None,
        metadata=_help("direct: width of the retrieval model (default: the language model's d_model, as in the paper)"),
    )
    direct_batch_size: int = field(default=128, metadata=_help("direct: training queries per step (reference: 128)"))
    direct_learning_rate: float = field(
        default=1e-4, metadata=_help("direct: AdamW peak learning rate (reference: 1e-4)")
    )
    direct_warmup_steps: int = field(
        default=500,
        metadata=_help(
            "direct: linear warmup steps, then linear decay to 0 at the last step (the HF Trainer's default schedule, "
            "as the reference; reference: 500)"
        ),
    )
    direct_mixing_init: MixingInit = field(
        default="uniform",
        metadata=_help(
            "direct: uniform: PyTorch's default, as the author's code (the protocol); exchangeable: a variant, every "
            "candidate slot's mixing starts as itself plus the query, which learns at CPU budgets where uniform stays "
            "at chance (docs/retrieval.md)"
        ),
    )
    significance: float = field(
        default=0.01,
        metadata=_help("direct: p-value below which test top-1 counts as above chance (one-sided binomial test)"),
    )
    infonce_variant: InfoNCEVariant = field(
        default="paper",
        metadata=_help(
            "infonce: paper: one query vs infonce_candidates passages per step (F5); in-batch: a batch of pairs, the "
            "other passages as negatives"
        ),
    )
    infonce_candidates: int = field(
        default=31, metadata=_help("infonce (paper): candidate passages per step, the positive among them")
    )
    infonce_steps: int = field(default=200, metadata=_help("infonce: fine-tuning steps"))
    infonce_batch_size: int = field(default=32, metadata=_help("infonce (in-batch): pairs per step"))
    infonce_learning_rate: float = field(
        default=1e-4,
        metadata=_help(
            "infonce: peak learning rate (linear warmup over the first tenth of the steps, then linear decay)"
        ),
    )
    temperature: float = field(
        default=0.02, metadata=_help("infonce: temperature of the cosine scores, f = exp(cos / temperature)")
    )
    seed: int = field(default=0, metadata=_help("seeds the pair split, the candidate draws and the trained retrievers"))

    def validate(self) -> None:
        """Counts and rates in range, so `--candidates 0 -5` or `--max-length 0` is refused before any model loads."""
        at_least(
            self,
            1,
            "min_query_words",
            "num_keywords",
            "queries_per_document",
            "batch_size",
            "direct_epochs",
            "direct_patience",
            "direct_layers",
            "direct_batch_size",
            "infonce_steps",
            "infonce_batch_size",
        )
        at_least(self, 2, "infonce_candidates")
        at_least(self, 0, "direct_min_delta", "direct_warmup_steps")
        require(
            self.kind == "sentence" or self.queries_per_document == 1,
            "queries_per_document",
            self.queries_per_document,
            "must be 1 for keywords pairs",
        )
        require(0 < self.significance < 1, "significance", self.significance, "must be in (0, 1)")
        at_least(self, 1, "max_test", "max_length", "direct_hidden_size", optional=True)
        seeds(self, "seed")
        require(0 < self.test_fraction < 1, "test_fraction", self.test_fraction, "must be in (0, 1)")
        for key in ("candidates", "direct_candidates"):
            values = getattr(self, key) or []
            require(all(n >= 2 for n in values), key, values, "must be candidate counts of at least 2")
        for key in ("infonce_learning_rate", "temperature", "direct_learning_rate"):
            value = getattr(self, key)
            require(math.isfinite(value) and value > 0, key, value, "must be a finite positive number")

    def pair_options(self) -> dict[str, int]:
        """The keywords of `build_pairs` that this kind of pair reads."""
        if self.kind == "sentence":
            return {"min_query_words": self.min_query_words, "queries_per_document": self.queries_per_document}
        return {"num_keywords": self.num_keywords}


PAIR_FIELDS = ("min_query_words", "num_keywords", "queries_per_document", "test_fraction", "max_test", "seed")
EMBED_FIELDS = ("position", "batch_size", "max_length")
BENCHMARK_FIELDS = (
    "methods",
    "candidates",
    "position",
    "batch_size",
    "max_length",
    "direct_candidates",
    "direct_epochs",
    "direct_stop",
    "direct_patience",
    "direct_min_delta",
    "direct_layers",
    "direct_hidden_size",
    "direct_batch_size",
    "direct_learning_rate",
    "direct_warmup_steps",
    "direct_mixing_init",
    "significance",
    "infonce_variant",
    "infonce_candidates",
    "infonce_steps",
    "infonce_batch_size",
    "infonce_learning_rate",
    "temperature",
    "seed",
)


def _argument(f: dataclasses.Field, tp: Any) -> dict[str, Any]:
    """argparse keywords for one field: its type, `choices` for a Literal, nargs for a list."""
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    options: dict[str, Any] = {"default": default, "help": f.metadata.get("help")}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (tp,) = [
            a for a in typing.get_args(tp) if a is not type(None)
        ]  # `X | None`: None is the default, the option takes an X
    if typing.get_origin(tp) is list:
        options["nargs"] = "+"
        (tp,) = typing.get_args(tp)
    if typing.get_origin(tp) is Literal:
        options["choices"] = typing.get_args(tp)
    elif tp in (int, float):
        options["type"] = tp
    return options


def add_options(parser: argparse.ArgumentParser, names: tuple[str, ...], cls: type = RetrievalSettings) -> None:
    """Add `--name` options for the fields `names` of `cls`, with its defaults, choices and help."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name in names:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, **_argument(fields[name], hints[name]))


def from_args(args: argparse.Namespace, names: tuple[str, ...], cls: type = RetrievalSettings, **fixed: Any) -> Any:
    """`cls` with the fields `names` taken from parsed options, `fixed` as given, the rest defaults;
    a value out of range is one line naming its option."""
    settings = cls(**{name: getattr(args, name) for name in names}, **fixed)
    try:
        settings.validate()
    except InvalidValue as err:
        raise UserError(f"--{err.key.replace('_', '-')} {err.rule}, got {err.value!r}") from None
    return settings


__all__ = [
    "BENCHMARK_FIELDS",
    "DIRECT_STOPS",
    "EMBED_FIELDS",
    "INFONCE_VARIANTS",
    "METHODS",
    "MIXING_INITS",
    "PAIR_FIELDS",
    "PAIR_KINDS",
    "POSITIONS",
    "Method",
    "DirectStop",
    "PairKind",
    "Position",
    "RetrievalSettings",
    "add_options",
    "from_args",
]
