"""What a model family is, written down once: the declaration every other module reads.

A family (`model.family` in a run config) is declared by its own model package as one `Family`:
its config and model classes, its task, the knobs of `ModelSpec` it takes, how a spec becomes its
Hugging Face config, its analytic FLOPs, and its capabilities as data. `models/__init__.py`
lists the declarations; the factory, the Auto registration, the CLI choices, FLOP counting,
memory matching, generation's prompt placement and evaluation all read them, so adding a family
is one new package and one line there.

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

# ModelSpec fields every family takes; a family's `knobs` are the others it reads.
COMMON_KNOBS = ("family", "name", "vocab_size", "hidden_size", "num_hidden_layers", "seq_len", "tie_word_embeddings")
ABLATION_SWITCHES = ("use_layer_norm", "use_residual", "use_feed_forward")


@dataclass(frozen=True)
class Capabilities:
    """What a family can do and how positions work in it; read instead of isinstance checks.

    generates: produces text left to right (`generate()`); bidirectional models and autoencoders do not.
    positions_are_rows: a token's position is the index of a mixing-matrix row, so prompts are laid
      out on the side the model was trained with and a position is never shifted by the batch
      (generation.py), and positions follow the attention mask rather than the column (positions.py).
    positional_encoding: the model adds position information (rotary, learned) besides any mixing rows.
    cached_generation: `generate(use_cache=True)` keeps a cache; without it every step recomputes.
    slides_past_context: generation continues past seq_len by sliding a window (masked mixer cache).
    predicts_in_place: logits[:, n] predicts token n (no shift) and has not seen it.
    ablation_switches: the ModelSpec switches it honours (`use_*`, and llama_ablated's feed_forward_attention).
    one_step_completion: trains with `train.objective: completion` (objectives/completion.py): its
      blocks are `model.model.layers` and take the (b, t, d) hidden states, in column order for
      unpadded and right-padded batches, as their first argument, so the second half can be
      replaced by a learned vector at the middle block by a forward pre-hook.
    """

    generates: bool = True
    positions_are_rows: bool = False
    positional_encoding: bool = True
    cached_generation: bool = False
    slides_past_context: bool = False
    predicts_in_place: bool = False
    ablation_switches: tuple[str, ...] = ()
    one_step_completion: bool = False


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
    standalone: the config and model modules import nothing but torch, transformers and modules
      of their own folder (`from .x import`), so `save_pretrained` copies the code beside the
      weights with an `auto_map` and the folder loads with `trust_remote_code=True` where this
      package is not installed (models/__init__.py registers them for it).
    """

    name: str
    description: str
    config_class: type
    model_class: type
    build_config: Callable[[Any, dict], Any]
    flops: Callable[[Any, int, int], FlopCount]
    knobs: tuple[str, ...] = ()
    capabilities: Capabilities = field(default_factory=Capabilities)
    task: str = CAUSAL_LM
    auto: dict[str, type] = field(default_factory=dict)
    size_multiple: Callable[[Any], int] = lambda spec: 1
    standalone: bool = False

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def takes(self) -> tuple[str, ...]:
        """Every ModelSpec field this family reads."""
        return COMMON_KNOBS + self.knobs


def context_length(model_or_config) -> int:
    """L, the longest input of a model (or of its config): one name for every family.

    Every config of this package publishes L as `max_position_embeddings` (the masked mixers map
    it to `seq_len` with `attribute_map`), where Hugging Face tools look for it.
    """
    config = getattr(model_or_config, "config", model_or_config)
    return int(config.max_position_embeddings)


__all__ = [
    "ABLATION_SWITCHES",
    "AUTOENCODE",
    "CAUSAL_LM",
    "COMMON_KNOBS",
    "TASKS",
    "Capabilities",
    "Family",
    "FlopCount",
    "context_length",
]
