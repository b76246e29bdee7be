"""What a model family is, written down once: the declaration every other module reads.

A family (`model.family` in a run config) is declared by its own model package as one `Family`:
its config and model classes, its task, the knobs it takes (each declared as a `Knob`, which
becomes a field of the run schema's `ModelSpec`), how a spec becomes its Hugging Face config, its
analytic FLOPs, its capabilities as data, and how tools show and tune it (label, plot colour,
learning-rate group). `models/__init__.py` lists the packages; the factory, the run schema, the
Auto registration, the CLI choices, FLOP counting, memory matching, generation's prompt placement,
evaluation, benchmarks and the scorecard all read the declarations, so adding a family is one new
package and one line there (docs/families.md walks through it).

This module is the bottom of the package: it imports nothing of masked_mixers, so every layer
(model packages included) can depend on it. Specs are read duck-typed (`spec.hidden_size`) for
the same reason: `ModelSpec` lives in the run schema, above the models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CAUSAL_LM = "causal_lm"
AUTOENCODE = "autoencode"
TASKS = (CAUSAL_LM, AUTOENCODE)

# ModelSpec fields every family takes (declared in the run schema); a family's `knobs` are the others it reads.
COMMON_KNOBS = ("family", "name", "vocab_size", "hidden_size", "num_hidden_layers", "seq_len", "tie_word_embeddings")


@dataclass(frozen=True)
class Knob:
    """One model setting a family reads beyond COMMON_KNOBS: a field of the run schema's ModelSpec.

    The family that reads it declares it (a knob several families read is declared once, below or
    in the package they share, so its type and default agree); the run schema collects every
    family's knobs into ModelSpec, so a new knob edits only its family's package.
    type: an annotation the config loader understands (int, float, bool, `int | None`, Literal[...]).
    minimum / below: the range `ModelSpec.validate` enforces (value >= minimum, value < below).
    """

    name: str
    type: Any
    default: Any
    doc: str
    minimum: float | None = None
    below: float | None = None


# Knobs several families read.
NUM_HEADS = Knob("num_heads", int, 4, "attention heads (llama, gpt2 & co.); heads of a multihead mixer", minimum=1)
FF_MULT = Knob("ff_mult", int, 4, "feed-forward width as a multiple of hidden_size", minimum=1)
DROPOUT = Knob("dropout", float, 0.0, "dropout probability", minimum=0, below=1)
USE_LAYER_NORM = Knob("use_layer_norm", bool, True, "ablation switch: false removes every layer norm")
USE_RESIDUAL = Knob("use_residual", bool, True, "ablation switch: false removes every residual connection")
USE_FEED_FORWARD = Knob("use_feed_forward", bool, True, "ablation switch: false removes every feed-forward")
ABLATION_KNOBS = (USE_LAYER_NORM, USE_RESIDUAL, USE_FEED_FORWARD)
ABLATION_SWITCHES = tuple(knob.name for knob in ABLATION_KNOBS)


@dataclass(frozen=True)
class Capabilities:
    """What a family can do and how positions work in it; read instead of isinstance checks.

    generates: produces text left to right (`generate()`); bidirectional models and autoencoders do not.
    positions_are_rows: a token's position is the index of a mixing-matrix row, so prompts are laid
      out on the side the model was trained with and a position is never shifted by the batch
      (generation.py), and positions follow the attention mask rather than the column (positions.py).
    cached_generation: `generate(use_cache=True)` keeps a cache; without it every step recomputes.
    slides_past_context: generation continues past seq_len by sliding a window (masked mixer cache).
    predicts_in_place: logits[:, n] predicts token n (no shift) and has not seen it.
    ablation_switches: the ModelSpec switches it honours (`use_*`, and llama_ablated's feed_forward_attention).
    triangular_tiles: its token mixing takes a triangular tile size (`bench train --triangular-tiles`).
    switchable_attention: it runs transformers' attention, whose implementation (sdpa, eager, ...)
      `set_attn_implementation` chooses (`bench train --llama-attention`).
    continuous_batching: its generation cache holds each row at its own position and can join and drop
      rows, so the server adds a request to the running batch at the next step (serving/continuous.py).
    compiled_decoding: `generation.compiled` decodes it with a static cache (torch.compile, CUDA graphs).
    one_step_completion: trains with `train.objective: completion` (objectives/completion.py): its
      blocks are `model.model.layers` and take the (b, t, d) hidden states, in column order for
      unpadded and right-padded batches, as their first argument, so the second half can be
      replaced by a learned vector at the middle block by a forward pre-hook.
    """

    generates: bool = True
    positions_are_rows: bool = False
    cached_generation: bool = False
    slides_past_context: bool = False
    predicts_in_place: bool = False
    ablation_switches: tuple[str, ...] = ()
    one_step_completion: bool = False
    triangular_tiles: bool = False
    switchable_attention: bool = False
    compiled_decoding: bool = False
    continuous_batching: bool = False


@dataclass
class FlopCount:
    """Forward FLOPs per token, by part (matrix multiplies only, 2 per multiply-add); `training` is 3 x their sum."""

    dense: float  # weight matrices inside the blocks (feature mixing, projections)
    token_mixing: float  # masked L x L products over positions
    attention: float  # Q K^T and (scores) V
    lm_head: float

    @property
    def forward(self) -> float:
        return self.dense + self.token_mixing + self.attention + self.lm_head

    @property
    def training(self) -> float:
        return 3 * self.forward

    def __add__(self, other: FlopCount) -> FlopCount:
        return FlopCount(*(a + b for a, b in zip(self.parts(), other.parts())))

    def __mul__(self, k: float) -> FlopCount:
        return FlopCount(*(k * a for a in self.parts()))

    __rmul__ = __mul__

    def parts(self) -> tuple[float, float, float, float]:
        return self.dense, self.token_mixing, self.attention, self.lm_head


def lm_head_flops(spec, vocab_size: int) -> FlopCount:
    """The LM head's forward FLOPs per token (d -> vocab), the same for every family."""
    return FlopCount(dense=0, token_mixing=0, attention=0, lm_head=2 * spec.hidden_size * vocab_size)


def default_label(name: str, spec) -> str:
    """`family-dD-nN-LL`: a short name for tables and plots."""
    return f"{name}-d{spec.hidden_size}-n{spec.num_hidden_layers}-L{spec.seq_len}"


@dataclass(frozen=True)
class Family:
    """One model family. See the module docstring.

    build_config(spec, common) -> the family's PreTrainedConfig; `common` holds vocab_size,
      hidden_size, num_hidden_layers, tie_word_embeddings and the tokenizer's special token ids.
      Raise ValueError for impossible sizes; the factory turns it into one line naming the spec.
    flops(spec, vocab_size, t) -> FlopCount per token at training length t.
    size_multiple(spec) -> what hidden_size must be a multiple of (num_heads where there are heads).
    auto: Auto class name ("AutoModel", "AutoModelForCausalLM") -> model class to register;
      empty for families whose classes transformers already registers (llama).
    standalone: its model classes derive from `remote_code.SelfContained` and its modules import
      nothing but torch, transformers and modules of this `models` package (relative imports of
      modules, not packages), so `save_pretrained` writes the code flat beside the weights with an
      `auto_map` and the folder loads with `trust_remote_code=True` where this package is not
      installed (models/__init__.py gives the classes their `_remote_code`; `push` refuses a family
      with classes of its own that is not standalone).
    knobs: the ModelSpec fields it reads beyond COMMON_KNOBS, as `Knob` declarations.
    learning_rate_group: whose tuned learning rate it takes where rates are tuned per kind of model
      (`reproduce` scales: "mixer", "llama", "gpt2"); a scale without its group refuses the family.
    colour: its matplotlib colour in plots (mixers blue "C0", transformers orange "C1").
    label(spec): a short name for tables and plots (`default_label` unless the family says more).
    """

    name: str
    description: str
    config_class: type
    model_class: type
    build_config: Callable[[Any, dict], Any]
    flops: Callable[[Any, int, int], FlopCount]
    knobs: tuple[Knob, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    task: str = CAUSAL_LM
    auto: dict[str, type] = field(default_factory=dict)
    size_multiple: Callable[[Any], int] = lambda spec: 1
    standalone: bool = False
    learning_rate_group: str = "llama"
    colour: str = "C1"
    label: Callable[[Any], str] | None = None

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def knob_names(self) -> tuple[str, ...]:
        return tuple(knob.name for knob in self.knobs)

    @property
    def takes(self) -> tuple[str, ...]:
        """Every ModelSpec field this family reads."""
        return COMMON_KNOBS + self.knob_names

    @property
    def label_shift(self) -> int:
        """How far labels sit from the logits that predict them: 1 for next-token prediction; 0 for
        autoencoders (reconstruction) and families that predict in place (bidirectional)."""
        return 1 if self.task == CAUSAL_LM and not self.capabilities.predicts_in_place else 0

    def label_of(self, spec) -> str:
        """The short name of a spec of this family for tables and plots."""
        return self.label(spec) if self.label else default_label(self.name, spec)


def context_length(model_or_config) -> int:
    """L, the longest input of a model (or of its config): one name for every family.

    Every config of this package publishes L as `max_position_embeddings` (the masked mixers map
    it to `seq_len` with `attribute_map`), where Hugging Face tools look for it.
    """
    config = getattr(model_or_config, "config", model_or_config)
    return int(config.max_position_embeddings)


__all__ = [
    "ABLATION_KNOBS",
    "ABLATION_SWITCHES",
    "DROPOUT",
    "FF_MULT",
    "NUM_HEADS",
    "Knob",
    "default_label",
    "lm_head_flops",
    "AUTOENCODE",
    "CAUSAL_LM",
    "COMMON_KNOBS",
    "TASKS",
    "Capabilities",
    "Family",
    "FlopCount",
    "context_length",
]
