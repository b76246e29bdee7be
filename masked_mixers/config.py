"""Typed run configuration: dataclasses that round-trip to YAML.

A run config has three sections, `model`, `data` and `train` (see configs/*.yaml). Loading
checks every key and type and names the offender (`configs/x.yaml: unknown key 'train.lr_rate'`),
so a typo never silently falls back to a default. `--set section.key=value` overrides use the
same checks.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


@dataclass
class ModelSpec:
    """One model, in the size terms both families share.

    family: "mixer" (masked mixer), "llama" (transformers' LlamaForCausalLM), "llama_ablated"
      (the same Llama modules, with use_layer_norm/use_residual/use_feed_forward switchable),
      "mixer_autoencoder" or "llama_autoencoder" (one-vector-bottleneck autoencoders), "linear_mixer",
      "transfixer", "bidirectional_mixer", "bidirectional_llama" (see factory.FAMILIES).
    vocab_size: null takes the tokenizer's size when the run is prepared.
    num_heads: attention heads for llama; heads of a multihead mixer.
    intermediate_size: llama MLP width; null means ff_mult * hidden_size.
    encoder_layers, decoder_layers: autoencoder stack depths; null means num_hidden_layers each.
    compression_dim: autoencoder bottleneck width; null keeps hidden_size.
    decoder_position_embedding: llama autoencoder only; false reproduces the paper's decoder, which
      gets no position signal (see AutoencodingTransformerConfig).
    linear_variant: for family linear_mixer, "linear", "relu" (ReLU before the head) or "near_linear".
    """

    family: str = "mixer"
    name: str | None = None
    vocab_size: int | None = None
    hidden_size: int = 256
    num_hidden_layers: int = 8
    seq_len: int = 512
    num_heads: int = 4
    mixer_type: str = "flat"
    expansion: int = 2
    ff_mult: int = 4
    intermediate_size: int | None = None
    dropout: float = 0.0
    tie_word_embeddings: bool = False
    use_layer_norm: bool = True
    use_residual: bool = True
    use_feed_forward: bool = True
    encoder_layers: int | None = None
    decoder_layers: int | None = None
    compression_dim: int | None = None
    decoder_position_embedding: bool = True
    linear_variant: str = "linear"

    @property
    def label(self) -> str:
        """A short name for tables and plots."""
        if self.name:
            return self.name
        kind = self.family if self.family != "mixer" else f"mixer-{self.mixer_type}"
        return f"{kind}-d{self.hidden_size}-n{self.num_hidden_layers}-L{self.seq_len}"


@dataclass
class DataConfig:
    """Where the corpus comes from and how it becomes fixed-length token examples.

    source: a Hugging Face dataset id, or one or more local files (.txt, .jsonl, .json, .parquet).
    eval_source: held-out corpus; null splits eval_fraction of `source` off instead.
    tokenizer: null trains a byte-level BPE of `vocab_size` on the training text; otherwise a
      tokenizer.json, a directory with one, a hub name, or a SentencePiece .model file.
    packing: true concatenates documents end to end and cuts them into L-token blocks; false
      truncates each document to L tokens and pads it (pad labels are ignored).
    """

    source: str | list[str] = "roneneldan/TinyStories"
    split: str = "train"
    eval_source: str | list[str] | None = None
    eval_split: str = "validation"
    eval_fraction: float = 0.02
    text_field: str = "text"
    lowercase: bool = False
    max_documents: int | None = None
    max_eval_documents: int | None = None
    tokenizer: str | None = None
    vocab_size: int = 4096
    packing: bool = False
    padding_side: str = "right"
    add_bos: bool = False
    add_eos: bool = True
    cache_dir: str = "~/.cache/masked_mixers"
    num_proc: int | None = None


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping. A run stops at max_steps or max_seconds, whichever is first.

    precision: "auto" (bf16 autocast on CUDA devices that support it, else fp32), "fp32", "bf16", "fp16".
    on_nonfinite: "stop" (one line naming the step and last good checkpoint) or "skip" the step.
    fsdp, fsdp_config: shard parameters, gradients and optimizer state over the GPUs (FSDP) for models
      that do not fit one device, e.g. fsdp: true, fsdp_config: {transformer_layer_cls_to_wrap:
      [MixerBlock], fsdp_version: 2}; both go to TrainingArguments (see docs/distributed.md).
    """

    output_dir: str = "runs/default"
    max_steps: int = 1000
    max_seconds: float | None = None
    batch_size: int = 16
    eval_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    lr_scheduler: str = "linear"
    warmup_steps: int = 50
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    precision: str = "auto"
    eval_steps: int = 100
    max_eval_batches: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    seed: int = 0
    num_workers: int = 0
    report_to: list[str] = field(default_factory=lambda: ["jsonl"])
    torch_compile: bool = False
    on_nonfinite: str = "stop"
    fsdp: bool = False
    fsdp_config: dict[str, str | bool | int | float | list[str]] = field(default_factory=dict)


@dataclass
class RunConfig:
    """A whole run: one model (or several, for compare), its data and its training."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class TrainOverrides:
    """Optimisation settings one model family may change in a comparison (null keeps the shared value).

    Only these: the batch, sequence length and budget stay shared, so every model sees the same
    tokens for the same budget. The paper tunes the learning rate per family (5e-4 mixer, 2e-4 Llama).
    """

    learning_rate: float | None = None
    lr_scheduler: str | None = None
    warmup_steps: int | None = None
    weight_decay: float | None = None
    adam_beta1: float | None = None
    adam_beta2: float | None = None
    max_grad_norm: float | None = None


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


@dataclass
class RetrievalTaskConfig:
    """The retrieval task of a comparison (see masked_mixers/compare/retrieval.py and docs/retrieval.md).

    When enabled, every model of the comparison, once trained as a language model, is benchmarked
    on (query, passage) pairs built from held-out documents, with BM25 on the same pairs.
    source: null builds pairs from the comparison's held-out documents: data.eval_source when set,
      else the documents of data.source after the first data.max_documents (those trained on).
    kind: "sentence" or "keywords" (see masked_mixers.retrieval.pairs); num_documents: documents
      read for pairs; test_fraction / max_test: the deterministic split (seeded by `seed`).
    candidates: numbers of candidate passages; null means 32, 64, ... up to the test pairs.
    methods: any of "cosine", "direct", "infonce" (see masked_mixers.retrieval.benchmark).
    """

    enabled: bool = False
    source: str | list[str] | None = None
    kind: str = "sentence"
    num_documents: int = 1000
    test_fraction: float = 0.5
    max_test: int | None = None
    min_query_words: int = 5
    num_keywords: int = 3
    candidates: list[int] | None = None
    methods: list[str] = field(default_factory=lambda: ["cosine", "infonce"])
    position: str = "second-to-last"
    batch_size: int = 32
    direct_candidates: list[int] = field(default_factory=lambda: [32])
    direct_epochs: int = 20
    direct_layers: int = 4
    infonce_steps: int = 200
    infonce_batch_size: int = 32
    infonce_learning_rate: float = 1e-4
    temperature: float = 0.05
    seed: int = 0


@dataclass
class CompareConfig:
    """Several models trained on the same tokens for the same budget (train.max_steps / max_seconds).

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
    size_matching: str = "identical"
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    retrieval: RetrievalTaskConfig = field(default_factory=RetrievalTaskConfig)


# --- loading and checking -------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _coerce(value: Any, tp: Any, source: str, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting only the harmless cases (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None):
                try:
                    return _coerce(value, option, source, key)
                except UserError:
                    pass
        wanted = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise UserError(f"{source}: key {key!r} expects {wanted}, got {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise UserError(f"{source}: key {key!r} expects a list, got {value!r}")
        return [_coerce(v, inner, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise UserError(f"{source}: key {key!r} expects a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp)
        return {_coerce(k, key_tp, source, key): _coerce(v, value_tp, source, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, source, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp in (int, float) and isinstance(value, bool)):
        raise UserError(f"{source}: key {key!r} expects {_type_name(tp)}, got {value!r}")
    return value


def _from_dict(cls: type, data: Any, source: str, prefix: str = "") -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{source}: '{prefix or 'top level'}' must be a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise UserError(f"{source}: unknown key {path!r} (known: {', '.join(sorted(names))})")
        kwargs[key] = _coerce(value, hints[key], source, path)
    return cls(**kwargs)


def from_dict(cls: type, data: Any, source: str = "config") -> Any:
    """Build dataclass `cls` from plain data; errors name `source` and the key path."""
    return _from_dict(cls, data, source)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def load_yaml(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.max_steps=20' -> (['train', 'max_steps'], 20); the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"--set {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply --set overrides to the raw mapping, before type checking."""
    data = dict(data or {})
    for text in overrides or []:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = child = dict(child) if isinstance(child, dict) else {}
            node = child
        node[keys[-1]] = value
    return data


def load_run_config(path: str | os.PathLike, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config YAML (with optional --set overrides) into a checked RunConfig."""
    raw = load_yaml(path)
    if raw is not None and not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of sections (model, data, train), got {type(raw).__name__}")
    return from_dict(RunConfig, apply_overrides(raw, overrides or []), str(path))


def load_compare_config(path: str | os.PathLike, overrides: list[str] | None = None) -> CompareConfig:
    """Read a compare config YAML (`models` is a list) with the same key checking as run configs."""
    return from_dict(CompareConfig, apply_overrides(load_yaml(path), overrides or []), str(path))


def save_yaml(obj: Any, path: str | os.PathLike) -> None:
    """Write a dataclass config as YAML atomically (temporary file, then rename)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
