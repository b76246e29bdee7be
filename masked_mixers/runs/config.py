"""The run schema: what one training run is, as typed dataclasses that round-trip to YAML.

A run config has three sections, `model`, `data` and `train` (see configs/*.yaml). The loader
(configfile.py) checks every key and type and names the offender (`configs/x.yaml: unknown key
'train.lr_rate'`), so a typo never silently falls back to a default; closed choices are
`Literal` types, so a wrong one names the key and lists the allowed values before any work.
`--set section.key=value` overrides use the same checks.

The compare schema, which reuses ModelSpec, DataConfig and TrainConfig, is in compare/config.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Literal

from ..core.configfile import (
    apply_overrides,
    at_least,
    from_dict,
    load_config,
    load_mapping,
    load_yaml,
    require,
    save_yaml,
    seeds,
    to_dict,
)
from ..core.errors import UserError

# An L x L mixing matrix per layer and L-token examples: past a million tokens no model here is
# buildable, and refusing it in the config stops tokenizing (and caching) for a run that cannot start.
MAX_SEQ_LEN = 2**20
FLOAT32_MAX = 3.4028234663852886e38  # a larger learning rate overflows inside the optimizer (a traceback, not a run)
LOGGERS_BUILT_IN = ("jsonl", "none")  # jsonl: our metrics.jsonl; none: no Trainer integration

PaddingSide = Literal["right", "left"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
OnNonfinite = Literal["stop", "skip"]
Optimizer = Literal["adamw", "adafactor", "sgd"]
Objective = Literal["clm", "mtp", "completion"]
MtpMode = Literal["recurrent", "heads"]


@dataclass
class CommonSpec:
    """The size terms every family shares; `ModelSpec` adds every family's own knobs to these.

    family: one of models.FAMILIES ("mixer", "llama", "gpt2", "llama_ablated", "mixer_autoencoder",
      "llama_autoencoder", "linear_mixer", "transfixer", "bidirectional_mixer", "bidirectional_llama";
      an open set, so checked by the factory against the registry rather than here).
    name: a label for tables and plots; null derives one from the family and the sizes.
    vocab_size: null takes the tokenizer's size when the run is prepared.
    seq_len: L, the fixed context length.
    """

    family: str = "mixer"
    name: str | None = None
    vocab_size: int | None = None
    hidden_size: int = 256
    num_hidden_layers: int = 8
    seq_len: int = 512
    tie_word_embeddings: bool = False

    def validate(self) -> None:
        """Sizes in range, and every family knob in the range its declaration states."""
        at_least(self, 1, "hidden_size", "num_hidden_layers", "seq_len")
        at_least(self, 1, "vocab_size", optional=True)
        require(self.seq_len <= MAX_SEQ_LEN, "seq_len", self.seq_len, f"must be at most {MAX_SEQ_LEN}")
        for knob in KNOBS.values():
            if knob.minimum is not None:
                at_least(self, knob.minimum, knob.name, optional=True)
            if knob.below is not None:
                value = getattr(self, knob.name)
                require(value is None or value < knob.below, knob.name, value, f"must be below {knob.below:g}")

    @property
    def label(self) -> str:
        """A short name for tables and plots: `name`, else the family's own label of the sizes."""
        from ..models import FAMILIES, default_label

        if self.name:
            return self.name
        family = FAMILIES.get(self.family)
        return family.label_of(self) if family else default_label(self.family, self)


def _collect_knobs() -> dict:
    """Every family's knobs by name; a knob two families declare must be the same declaration."""
    from ..models import FAMILIES

    knobs: dict = {}
    for family in FAMILIES.values():
        for knob in family.knobs:
            if knobs.setdefault(knob.name, knob) != knob:
                raise TypeError(
                    f"families declare knob {knob.name!r} twice, differently: "
                    f"{knobs[knob.name]} vs {knob} ({family.name})"
                )
    return knobs


KNOBS = _collect_knobs()
# One model: the shared sizes plus every family's knobs (models/*/family.py declares them), so a
# new knob edits only its family's package. The factory refuses a knob the spec's family does not read.
ModelSpec = dataclasses.make_dataclass(
    "ModelSpec",
    [(knob.name, knob.type, field(default=knob.default)) for knob in KNOBS.values()],
    bases=(CommonSpec,),
)
ModelSpec.__module__ = __name__
ModelSpec.__doc__ = "One model, in the size terms every family shares plus each family's knobs:\n\n" + "\n".join(
    f"  {knob.name} (default {knob.default!r}): {knob.doc}" for knob in KNOBS.values()
)


@dataclass
class DataConfig:
    """Where the corpus comes from and how it becomes fixed-length token examples.

    source: a Hugging Face dataset id (streamed, never downloaded whole), or one or more local
      files (.txt, .jsonl, .json, .parquet).
    config_name: the hub dataset's configuration, e.g. "sample-10BT" for HuggingFaceFW/fineweb-edu.
    eval_source: held-out corpus; null holds out every round(1/eval_fraction)-th document of `source`.
    tokenizer: null trains a byte-level BPE of `vocab_size` on the first tokenizer_sample_documents
      training documents; otherwise a tokenizer.json, a directory with one, a hub name, or a
      SentencePiece .model file, used as is.
    packing: true concatenates documents end to end and cuts them into L-token blocks; false
      truncates each document to L tokens and pads it (pad labels are ignored).
    max_tokens: stop reading the corpus once the training split holds this many tokens.
    shard_documents: documents per shard: the unit of resuming an interrupted preparation and of
      memory use (packing drops each shard's remainder under L tokens).
    num_proc: tokenizing worker processes; null uses all cores.
    """

    source: str | list[str] = "roneneldan/TinyStories"
    config_name: str | None = None
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
    tokenizer_sample_documents: int = 100_000
    packing: bool = False
    padding_side: PaddingSide = "right"
    add_bos: bool = False
    add_eos: bool = True
    cache_dir: str = "~/.cache/masked_mixers"
    max_tokens: int | None = None
    shard_documents: int = 10_000
    num_proc: int | None = None

    def validate(self) -> None:
        require(bool(self.source), "source", self.source, "must name a dataset or at least one file")
        require(0 <= self.eval_fraction < 1, "eval_fraction", self.eval_fraction, "must be in [0, 1)")
        at_least(self, 1, "max_documents", "max_eval_documents", "num_proc", optional=True)
        at_least(self, 1, "vocab_size")
        require(bool(self.cache_dir), "cache_dir", self.cache_dir, "must be a directory")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping. A run stops at max_steps, max_seconds, max_compute_seconds or max_flops,
    whichever is first.

    max_flops: a training-compute budget (null = off): each model trains the whole steps its own
      analytic training FLOPs per step fit into (budget.py: the count `bench` uses, 3 x forward matmul
      FLOPs per token x batch_size x gradient_accumulation_steps x processes x seq_len). Decided before
      training, so the learning-rate schedule ends there and a resume reaches the same step; unlike
      max_seconds it does not depend on how loaded the machine is. In YAML write 3.0e+13 (the dot and
      the exponent's sign make it a number) or an integer.
    max_compute_seconds: a compute-time budget (null = off): GPU seconds of the optimizer steps on CUDA,
      else this process's CPU seconds inside the optimizer steps (clocks.py; evaluation and saving are
      outside). Unlike max_seconds (wall clock) it does not grow with other processes' load; a CPU
      budget still depends on which CPU runs it (and a little on cache contention), a GPU one on the GPU.
    warmup_ratio: warmup as a fraction of the run's own step limit (max_steps, or the steps max_flops
      gives this model) instead of warmup_steps; null = use warmup_steps.

    precision: "auto" (bf16 autocast on CUDA devices that support it, else fp32), "fp32", "bf16", "fp16".
    on_nonfinite: "stop" (one line naming the step and last good checkpoint) or "skip" the step.
    on_nonfinite "stop" checks the loss without a host-device sync per step: at logging, evaluation,
      saving and the last step (the run stops there, naming the first non-finite step); "skip" must
      decide before each optimizer step, so it syncs every step.
    torch_compile: torch.compile the model (TrainingArguments' torch_compile; the first steps compile).
    num_workers: data-loading worker processes; null = 4 on CUDA (with pinned memory), 0 on CPU.
    fsdp, fsdp_config: shard parameters, gradients and optimizer state over the GPUs (FSDP) for models
      that do not fit one device, e.g. fsdp: true, fsdp_config: {transformer_layer_cls_to_wrap:
      [MixerBlock], fsdp_version: 2}; both go to TrainingArguments (see docs/distributed.md).
    init_from: start from the weights of a trained run folder or a Hugging Face hub id instead of a
      fresh model; its config (family, sizes, L) and tokenizer are used (model.family and
      model.seq_len must agree with it; data.tokenizer defaults to it).
    optimizer: "adamw" (torch AdamW, one fused kernel per step on CUDA, for-each elsewhere; adam_beta1/2
      apply), "adafactor" (transformers' Adafactor, no
      first moment: less optimizer memory) or "sgd" (torch SGD, no momentum); weight_decay applies to all.
    gradient_checkpointing: recompute each block's activations in the backward pass (less memory,
      about a third more compute); the family must support it.
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
    max_flops: float | None = None
    max_compute_seconds: float | None = None
    batch_size: int = 16
    eval_batch_size: int | None = None
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-4
    lr_scheduler: str = "linear"
    warmup_steps: int = 50
    warmup_ratio: float | None = None
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
    num_workers: int | None = None
    report_to: list[str] = field(default_factory=lambda: ["jsonl"])
    torch_compile: bool = False
    on_nonfinite: OnNonfinite = "stop"
    fsdp: bool = False
    fsdp_config: dict[str, str | bool | int | float | list[str]] = field(default_factory=dict)
    objective: Objective = "clm"
    mtp_tokens: int = 2
    mtp_mode: MtpMode = "recurrent"
    init_from: str | None = None
    optimizer: Optimizer = "adamw"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.output_dir, str):  # `~/runs/x` is the home folder's, not a folder named `~` here
            self.output_dir = os.path.expanduser(self.output_dir)

    def validate(self) -> None:
        """Every value Hugging Face / torch would otherwise meet only after data preparation."""
        require(bool(self.output_dir), "output_dir", self.output_dir, "must be a directory")
        at_least(self, 1, "max_steps", "batch_size", "gradient_accumulation_steps", "logging_steps")
        at_least(self, 1, "eval_batch_size", "max_eval_batches", "save_total_limit", optional=True)
        at_least(self, 0, "num_workers", optional=True)  # null: chosen for the device (training._data_loading)
        seeds(self, "seed")
        at_least(self, 0, "warmup_steps", "eval_steps", "save_steps", "weight_decay", "max_grad_norm")
        ratio = self.warmup_ratio
        require(ratio is None or 0 <= ratio < 1, "warmup_ratio", ratio, "must be in [0, 1)")
        for key in ("max_seconds", "max_flops", "max_compute_seconds"):
            value = getattr(self, key)
            require(value is None or (math.isfinite(value) and value > 0), key, value, "must be positive or null")
        # 0 is allowed: a run that only carries weights over (init_from) or measures a fixed model
        require(
            math.isfinite(self.learning_rate) and 0 <= self.learning_rate <= FLOAT32_MAX,
            "learning_rate",
            self.learning_rate,
            f"must be a number from 0 to {FLOAT32_MAX:.3g} (optimizers keep it in float32)",
        )
        for key in ("adam_beta1", "adam_beta2"):
            require(0 <= getattr(self, key) < 1, key, getattr(self, key), "must be in [0, 1)")
        require(0 <= self.seed < 2**32, "seed", self.seed, "must be in [0, 2**32)")
        at_least(self, 1, "mtp_tokens")
        check_scheduler(self.lr_scheduler)
        check_loggers(self.report_to)


@dataclass
class RunConfig:
    """A whole run: one model (or several, for compare), its data and its training."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def check_scheduler(name: str, key: str = "lr_scheduler") -> None:
    """A learning-rate schedule transformers knows (its SchedulerType), named at load time."""
    from transformers import SchedulerType

    known = [s.value for s in SchedulerType]
    require(name in known, key, name, f"must be one of {', '.join(known)}")


def check_loggers(names: list[str], installed: bool = False) -> None:
    """report_to: our jsonl, none, or a Trainer integration; with `installed`, one installed here.

    The config check knows the names (a typo is refused wherever the config is read); `train`
    checks installation before reading data, so a paper config with tensorboard still loads for
    `prepare` on a machine without it.
    """
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    known = set(LOGGERS_BUILT_IN) | (
        set(get_available_reporting_integrations()) if installed else set(INTEGRATION_TO_CALLBACK)
    )
    for name in names:
        if installed:
            require(name in known, "report_to", name, f"is not installed here (available: {', '.join(sorted(known))})")
        else:
            require(name in known, "report_to", name, f"must be one of {', '.join(sorted(known))}")


def load_run_config(path: str | os.PathLike, overrides: list[str] | None = None) -> RunConfig:
    """Read a run config YAML (with optional --set overrides) into a checked RunConfig.

    The `model` section is required: a run that forgot it would otherwise train the default model.
    """
    raw = load_mapping(path, "sections (model, data, train)")
    config = load_config(RunConfig, path, overrides, what="sections (model, data, train)")
    if "model" not in raw and not any(o.strip().startswith("model.") for o in overrides or []):
        raise UserError(f"{path}: no 'model' section; say which model to train (e.g. model: {{family: mixer}})")
    return config


# the YAML machinery, re-exported for code that reads a run's config by hand
__all__ = [
    "MAX_SEQ_LEN",
    "check_loggers",
    "check_scheduler",
    "CommonSpec",
    "DataConfig",
    "KNOBS",
    "ModelSpec",
    "MtpMode",
    "Objective",
    "OnNonfinite",
    "Optimizer",
    "PaddingSide",
    "Precision",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "load_run_config",
    "load_yaml",
    "save_yaml",
    "to_dict",
]
