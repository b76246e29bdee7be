"""The run schema: what one training run is, as typed dataclasses that round-trip to YAML.

A run config has three sections, `model`, `data` and `train` (see configs/*.yaml). The loader
(configfile.py) checks every key and type and names the offender (`configs/x.yaml: unknown key
'train.lr_rate'`), so a typo never silently falls back to a default; closed choices are
`Literal` types, so a wrong one names the key and lists the allowed values before any work.
`--set section.key=value` overrides use the same checks.

The compare schema, which reuses ModelSpec, DataConfig and TrainConfig, is in compare/config.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from .configfile import apply_overrides, from_dict, load_config, load_yaml, save_yaml, to_dict

MixerType = Literal["flat", "expanded", "multihead"]
LinearVariant = Literal["linear", "relu", "near_linear"]
PaddingSide = Literal["right", "left"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
OnNonfinite = Literal["stop", "skip"]
Objective = Literal["clm", "mtp", "completion"]
MtpMode = Literal["recurrent", "heads"]


@dataclass
class ModelSpec:
    """One model, in the size terms both families share.

    family: "mixer" (masked mixer), "llama" (transformers' LlamaForCausalLM), "llama_ablated"
      (the same Llama modules, with use_layer_norm/use_residual/use_feed_forward switchable),
      "mixer_autoencoder" or "llama_autoencoder" (one-vector-bottleneck autoencoders), "linear_mixer",
      "transfixer", "bidirectional_mixer", "bidirectional_llama" (see models.FAMILIES; an open set, so
      checked by the factory against the registry rather than here).
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
    mixer_type: MixerType = "flat"
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
    linear_variant: LinearVariant = "linear"

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
    padding_side: PaddingSide = "right"
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
    objective: "clm" (next-token prediction), "mtp" (multi-token prediction, every causal family) or
      "completion" (the first half of L tokens predicts the second in one pass; families whose
      capabilities say one_step_completion); see masked_mixers/objectives/ and docs/objectives.md.
    mtp_tokens: n, the tokens predicted per position under mtp (1 is plain next-token prediction).
    mtp_mode: "recurrent" (n passes, each reading the previous pass's greedy predictions, as the
      author's code) or "heads" (one trunk pass, n output heads; enables self-speculative decoding).
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
    precision: Precision = "auto"
    eval_steps: int = 100
    max_eval_batches: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    seed: int = 0
    num_workers: int = 0
    report_to: list[str] = field(default_factory=lambda: ["jsonl"])
    torch_compile: bool = False
    on_nonfinite: OnNonfinite = "stop"
    fsdp: bool = False
    fsdp_config: dict[str, str | bool | int | float | list[str]] = field(default_factory=dict)
    objective: Objective = "clm"
    mtp_tokens: int = 2
    mtp_mode: MtpMode = "recurrent"


@dataclass
class RunConfig:
    """A whole run: one model (or several, for compare), its data and its training."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_run_config(path: str | os.PathLike, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config YAML (with optional --set overrides) into a checked RunConfig."""
    return load_config(RunConfig, path, overrides, what="sections (model, data, train)")


# the YAML machinery, re-exported for code that reads a run's config by hand
__all__ = [
    "DataConfig", "LinearVariant", "MixerType", "ModelSpec", "MtpMode", "Objective", "OnNonfinite", "PaddingSide", "Precision", "RunConfig", "TrainConfig",
    "apply_overrides", "from_dict", "load_run_config", "load_yaml", "save_yaml", "to_dict",
]
