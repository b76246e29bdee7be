"""Turn a `ModelSpec` into a model of its declared family (models/__init__.py), and count its parameters.

Nothing here knows a family by name: each family's package says how a spec becomes its config
(`Family.build_config`), which spec fields it reads (`Family.knobs`, declared there) and what hidden_size must be
a multiple of (`Family.size_multiple`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import psutil
import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel

from ..core.errors import UserError, reason
from ..models import FAMILIES, Family
from .config import ModelSpec


@dataclass
class ParameterCount:
    """Parameters of a model, split the way papers usually quote them."""

    total: int
    embedding: int
    non_embedding: int

    def __str__(self) -> str:
        return f"{self.total / 1e6:.2f}M parameters ({self.non_embedding / 1e6:.2f}M non-embedding)"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Unique parameters (a tied head counts once); embedding = input embedding (+ untied head)."""
    seen: dict[int, int] = {}
    for p in model.parameters():
        seen[id(p)] = p.numel()
    total = sum(seen.values())
    emb = {
        id(p): p.numel()
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
        if m is not None
        for p in m.parameters()
    }
    embedding = sum(emb.values())
    return ParameterCount(total=total, embedding=embedding, non_embedding=total - embedding)


def family(name: str, key: str = "model.family") -> Family:
    """The declared family called `name`, or one line listing the choices."""
    if name not in FAMILIES:
        raise UserError(f"{key}: unknown family {name!r} (choose from {', '.join(FAMILIES)})")
    return FAMILIES[name]


def check_knobs(spec: ModelSpec, key: str = "model") -> Family:
    """The spec's family, after refusing a knob it does not read (it would be silently ignored)."""
    fam = family(spec.family, f"{key}.family")
    defaults = ModelSpec()
    for f in dataclasses.fields(ModelSpec):
        if f.name not in fam.takes and getattr(spec, f.name) != getattr(defaults, f.name):
            others = [name for name, other in FAMILIES.items() if f.name in other.knob_names]
            raise UserError(
                f"{key}.{f.name}: family {spec.family!r} does not take it "
                f"(families that do: {', '.join(others) or 'none'})"
            )
    multiple = fam.size_multiple(spec)
    if multiple < 1 or spec.hidden_size % multiple:
        raise UserError(f"{key}.num_heads: hidden_size {spec.hidden_size} is not divisible by {multiple} heads")
    return fam


def spec_for(name: str, **fields) -> ModelSpec:
    """A ModelSpec of family `name` from `fields`, keeping only the fields that family takes.

    For tools that describe several families with one set of sizes (bench, tests): a multihead
    mixer's `mixer_type` is not handed to Llama, Llama's `intermediate_size` not to a mixer.
    """
    takes = family(name).takes
    return ModelSpec(family=name, **{k: v for k, v in fields.items() if k in takes})


def family_task(spec: ModelSpec, key: str = "model.family") -> str:
    """The task of `spec`'s family, known before any model is built."""
    return family(spec.family, key).task


def model_config(spec: ModelSpec, vocab_size: int | None = None, **token_ids) -> PreTrainedConfig:
    """The Hugging Face config for `spec` (vocab_size from the tokenizer when the spec leaves it null).

    token_ids: pad_token_id, bos_token_id, eos_token_id of the tokenizer the model is used with.
    """
    vocab = spec.vocab_size or vocab_size
    if not vocab:
        raise UserError("model.vocab_size: not set and no tokenizer to take it from")
    if vocab_size and spec.vocab_size and vocab_size > spec.vocab_size:
        raise UserError(
            f"model.vocab_size: the tokenizer has {vocab_size} tokens but the model only {spec.vocab_size}; "
            "raise model.vocab_size or leave it null"
        )
    common = dict(
        vocab_size=vocab,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_hidden_layers,
        tie_word_embeddings=spec.tie_word_embeddings,
        **{k: v for k, v in token_ids.items() if v is not None},
    )
    fam = check_knobs(spec)
    try:
        return fam.build_config(spec, common)
    except UserError:
        raise
    except Exception as err:  # the config's own validators: one line naming the spec
        raise UserError(f"model: {str(err).strip().splitlines()[-1].strip()}") from None


_SIZE_KEYS = ("hidden_size", "num_hidden_layers", "seq_len", "num_heads")
_DEPTH_KEYS = ("num_hidden_layers", "encoder_layers", "decoder_layers")


def _weight_bytes(spec: ModelSpec, vocab_size: int | None, token_ids: dict) -> int:
    """Bytes of the model's weights, from shells on the meta device (no memory, no RNG).

    Shells are one and two layers deep and the cost is extrapolated linearly in each depth, so
    a depth of 10**9 is never materialised even as Python objects.
    """

    def shell_bytes(**depths) -> int:
        config = model_config(dataclasses.replace(spec, **depths), vocab_size, **token_ids)
        with torch.device("meta"):
            shell = family(spec.family).model_class(config)
        return sum(p.numel() * p.element_size() for p in shell.parameters())

    depths = {k: getattr(spec, k) for k in _DEPTH_KEYS if getattr(spec, k) is not None}
    shallow = {k: 1 for k in depths}
    base = shell_bytes(**shallow)
    return base + sum((n - 1) * (shell_bytes(**{**shallow, k: 2}) - base) for k, n in depths.items())


def _check_fits_in_memory(spec: ModelSpec, vocab_size: int | None, token_ids: dict) -> None:
    """An absurd size (hidden_size=10**12) must be one line naming the spec, not a MemoryError, an
    allocator RuntimeError, or an allocation the kernel grants and then kills the process for."""
    sizes = ", ".join(f"{k}={getattr(spec, k)}" for k in _SIZE_KEYS)
    try:
        weight_bytes = _weight_bytes(spec, vocab_size, token_ids)
    except (RuntimeError, ValueError, OverflowError, MemoryError) as err:
        raise UserError(f"model: cannot build {spec.family} with {sizes} ({reason(err)})") from None
    available = psutil.virtual_memory().available
    if weight_bytes > available:
        raise UserError(
            f"model: {spec.family} with {sizes} needs {weight_bytes / 2**30:,.1f} GiB for its weights alone, "
            f"more than the {available / 2**30:,.1f} GiB of free memory; "
            "reduce model.hidden_size, model.num_hidden_layers or model.seq_len"
        )


def check_model_size(spec: ModelSpec, vocab_size: int | None = None, **token_ids) -> None:
    """Refuse a model that cannot be built or does not fit in memory, without allocating it.

    `train` and `prepare` call this before tokenizing (with the configured vocabulary size as the
    estimate), so an impossible seq_len or width never costs a data preparation and a cache entry.
    """
    for key in _SIZE_KEYS:
        if getattr(spec, key) < 1:
            raise UserError(f"model.{key}: must be at least 1, got {getattr(spec, key)}")
    _check_fits_in_memory(spec, vocab_size, token_ids)


def build_model(spec: ModelSpec, vocab_size: int | None = None, **token_ids) -> tuple[PreTrainedModel, ParameterCount]:
    """Build a freshly initialised model of `spec.family` and count its parameters."""
    check_model_size(spec, vocab_size, **token_ids)
    model = family(spec.family).model_class(model_config(spec, vocab_size, **token_ids))
    return model, count_parameters(model)
