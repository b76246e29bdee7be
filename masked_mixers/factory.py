"""One place that turns a `ModelSpec` into a model of either family, and counts its parameters.

The transformer baseline is transformers' own `LlamaForCausalLM`: attention is never
reimplemented here, so the comparison is against the real thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import psutil
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedConfig, PreTrainedModel

from .config import ModelSpec
from .errors import UserError, reason
from .models import (
    AblatedLlamaConfig,
    AblatedLlamaForCausalLM,
    AutoencodingMixer,
    AutoencodingMixerConfig,
    AutoencodingTransformer,
    AutoencodingTransformerConfig,
    BidirectionalLlamaConfig,
    BidirectionalLlamaLM,
    BidirectionalMixerConfig,
    BidirectionalMixerLM,
    LinearMixerConfig,
    LinearMixerForCausalLM,
    MaskedMixerConfig,
    MaskedMixerForCausalLM,
    TransfixerConfig,
    TransfixerForCausalLM,
)
from .tasks import model_task

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
    emb = {id(p): p.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None for p in m.parameters()}
    embedding = sum(emb.values())
    return ParameterCount(total=total, embedding=embedding, non_embedding=total - embedding)


def _checked(build: Callable[[], PreTrainedConfig]) -> PreTrainedConfig:
    """Build a config; its own validators' complaint becomes one UserError line."""
    try:
        return build()
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"model: {str(err).strip().splitlines()[-1].strip()}") from None


def _all_parts_on(spec: ModelSpec) -> None:
    if not (spec.use_layer_norm and spec.use_residual and spec.use_feed_forward):
        raise UserError(f"model: ablation switches need family 'mixer' or 'llama_ablated'; family {spec.family!r} has them all on")


def _mixer_config(spec: ModelSpec, common: dict, config_class: type = MaskedMixerConfig, **extra) -> PreTrainedConfig:
    return _checked(
        lambda: config_class(
            seq_len=spec.seq_len,
            mixer_type=spec.mixer_type,
            num_heads=spec.num_heads,
            expansion=spec.expansion,
            ff_mult=spec.ff_mult,
            dropout=spec.dropout,
            use_layer_norm=spec.use_layer_norm,
            use_residual=spec.use_residual,
            use_feed_forward=spec.use_feed_forward,
            **common,
            **extra,
        )
    )


def _linear_mixer_config(spec: ModelSpec, common: dict) -> PreTrainedConfig:
    _all_parts_on(spec)
    if spec.dropout:
        raise UserError("model.dropout: not available for family 'linear_mixer'")
    return _checked(lambda: LinearMixerConfig(seq_len=spec.seq_len, variant=spec.linear_variant, ff_mult=spec.ff_mult, **common))


def _llama_kwargs(spec: ModelSpec, common: dict) -> dict:
    if spec.hidden_size % spec.num_heads:
        raise UserError(f"model.num_heads: hidden_size {spec.hidden_size} is not divisible by {spec.num_heads} heads")
    return dict(
        intermediate_size=spec.intermediate_size or spec.ff_mult * spec.hidden_size,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=spec.seq_len,
        attention_dropout=spec.dropout,
        **common,
    )


def _llama_config(spec: ModelSpec, common: dict, config_class: type = LlamaConfig, **extra) -> PreTrainedConfig:
    _all_parts_on(spec)
    return _checked(lambda: config_class(**_llama_kwargs(spec, common), **extra))


def _ablated_llama_config(spec: ModelSpec, common: dict) -> PreTrainedConfig:
    switches = dict(use_layer_norm=spec.use_layer_norm, use_residual=spec.use_residual, use_feed_forward=spec.use_feed_forward)
    return _checked(lambda: AblatedLlamaConfig(**switches, **_llama_kwargs(spec, common)))


def _autoencoder_fields(spec: ModelSpec) -> dict:
    return dict(encoder_layers=spec.encoder_layers, decoder_layers=spec.decoder_layers, compression_dim=spec.compression_dim)


def _mixer_autoencoder_config(spec: ModelSpec, common: dict) -> PreTrainedConfig:
    return _mixer_config(spec, common, AutoencodingMixerConfig, **_autoencoder_fields(spec))


def _llama_autoencoder_config(spec: ModelSpec, common: dict) -> PreTrainedConfig:
    fields = _autoencoder_fields(spec)
    return _llama_config(spec, common, AutoencodingTransformerConfig, decoder_position_embedding=spec.decoder_position_embedding, **fields)


# family -> (config builder, model class). New architectures add one line here.
FAMILIES: dict[str, tuple[Callable[[ModelSpec, dict], PreTrainedConfig], type[PreTrainedModel]]] = {
    "mixer": (_mixer_config, MaskedMixerForCausalLM),
    "llama": (_llama_config, LlamaForCausalLM),
    "llama_ablated": (_ablated_llama_config, AblatedLlamaForCausalLM),  # Llama modules, switchable parts
    "mixer_autoencoder": (_mixer_autoencoder_config, AutoencodingMixer),
    "llama_autoencoder": (_llama_autoencoder_config, AutoencodingTransformer),
    "linear_mixer": (_linear_mixer_config, LinearMixerForCausalLM),
    "transfixer": (partial(_llama_config, config_class=TransfixerConfig), TransfixerForCausalLM),
    "bidirectional_mixer": (partial(_mixer_config, config_class=BidirectionalMixerConfig), BidirectionalMixerLM),
    "bidirectional_llama": (partial(_llama_config, config_class=BidirectionalLlamaConfig), BidirectionalLlamaLM),
}


def _family(spec: ModelSpec, key: str = "model.family"):
    if spec.family not in FAMILIES:
        raise UserError(f"{key}: unknown family {spec.family!r} (choose from {', '.join(FAMILIES)})")
    return FAMILIES[spec.family]


def family_task(spec: ModelSpec, key: str = "model.family") -> str:
    """The task of `spec`'s family (tasks.py), read from its model class before any model is built."""
    return model_task(_family(spec, key)[1])


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
    return _family(spec)[0](spec, common)


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
            shell = _family(spec)[1](config)
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
            f"more than the {available / 2**30:,.1f} GiB of free memory; reduce model.hidden_size or model.num_hidden_layers"
        )


def build_model(spec: ModelSpec, vocab_size: int | None = None, **token_ids) -> tuple[PreTrainedModel, ParameterCount]:
    """Build a freshly initialised model of `spec.family` and count its parameters."""
    for key in _SIZE_KEYS:
        if getattr(spec, key) < 1:
            raise UserError(f"model.{key}: must be at least 1, got {getattr(spec, key)}")
    _check_fits_in_memory(spec, vocab_size, token_ids)
    model = _family(spec)[1](model_config(spec, vocab_size, **token_ids))
    return model, count_parameters(model)
