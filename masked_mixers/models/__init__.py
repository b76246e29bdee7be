"""Model architectures, one package per family, and the family table everything else reads.

Each package declares its families (`Family`, see family.py) in its `family.py` and lists them as
`FAMILIES` in its `__init__.py`. `FAMILY_PACKAGES` below names the packages: adding a family is one
new package and one line there (docs/families.md). Importing this module registers every family's
config and model classes with transformers' Auto classes.
"""

from __future__ import annotations

import importlib

import transformers

from .ablated_llama import AblatedLlamaConfig, AblatedLlamaForCausalLM, AblatedLlamaModel
from .autoencoder import (
    AutoencodingMixer,
    AutoencodingMixerConfig,
    AutoencodingTransformer,
    AutoencodingTransformerConfig,
)
from .bidirectional import (
    BidirectionalLlamaConfig,
    BidirectionalLlamaLM,
    BidirectionalMixerConfig,
    BidirectionalMixerLM,
)
from .family import (
    AUTOENCODE,
    CAUSAL_LM,
    TASKS,
    Capabilities,
    Family,
    FlopCount,
    Knob,
    context_length,
    default_label,
    lm_head_flops,
)
from .linear_mixer import LinearMixerConfig, LinearMixerForCausalLM, LinearMixerModel
from .masked_mixer import MaskedMixerConfig, MaskedMixerForCausalLM, MaskedMixerModel
from .transfixer import TransfixerConfig, TransfixerForCausalLM, TransfixerModel

# The family packages, in the order choices are listed (the masked mixer and its baselines first).
FAMILY_PACKAGES = (
    "masked_mixer",
    "llama",
    "gpt2",
    "ablated_llama",
    "autoencoder",
    "linear_mixer",
    "transfixer",
    "bidirectional",
)
FAMILIES: dict[str, Family] = {
    family.name: family
    for package in FAMILY_PACKAGES
    for family in importlib.import_module(f"{__name__}.{package}").FAMILIES
}
_BY_MODEL_TYPE = {family.model_type: family for family in FAMILIES.values()}


def family_of(model_or_config) -> Family:
    """The family of a model instance or class, or of a config: looked up by its model_type."""
    config = getattr(model_or_config, "config", None)
    if config is None:  # a config, or a model class (whose config_class names its model_type)
        config = getattr(model_or_config, "config_class", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in _BY_MODEL_TYPE:
        raise ValueError(
            f"model_type {model_type!r} belongs to no family of this package ({', '.join(_BY_MODEL_TYPE)})"
        )
    return _BY_MODEL_TYPE[model_type]


def _register() -> None:
    """Make AutoConfig and each family's Auto classes know every model_type of this package.

    A standalone family's model classes (which derive from `remote_code.SelfContained`) are given
    its config and Auto classes as `_remote_code`: their `save_pretrained` then writes the modeling
    files and an `auto_map` beside the weights, so the folder is a self-contained Hugging Face model.
    Every family class says it explicitly (None when not standalone), as a family built on another
    (linear_mixer on the masked mixer) must not save its parent's classes.
    """
    for family in FAMILIES.values():
        if not family.auto:
            continue  # transformers' own classes (llama, gpt2) are registered by transformers
        transformers.AutoConfig.register(family.model_type, family.config_class, exist_ok=True)
        for auto_name, model_class in family.auto.items():
            getattr(transformers, auto_name).register(family.config_class, model_class, exist_ok=True)
        remote = {"AutoConfig": family.config_class, **family.auto} if family.standalone else None
        for cls in {family.model_class, *family.auto.values()}:
            cls._remote_code = remote


_register()

__all__ = [
    "AUTOENCODE",
    "CAUSAL_LM",
    "FAMILIES",
    "TASKS",
    "AblatedLlamaConfig",
    "AblatedLlamaForCausalLM",
    "AblatedLlamaModel",
    "AutoencodingMixer",
    "AutoencodingMixerConfig",
    "AutoencodingTransformer",
    "AutoencodingTransformerConfig",
    "BidirectionalLlamaConfig",
    "BidirectionalLlamaLM",
    "BidirectionalMixerConfig",
    "BidirectionalMixerLM",
    "Capabilities",
    "Family",
    "FlopCount",
    "Knob",
    "LinearMixerConfig",
    "LinearMixerForCausalLM",
    "LinearMixerModel",
    "MaskedMixerConfig",
    "MaskedMixerForCausalLM",
    "MaskedMixerModel",
    "TransfixerConfig",
    "TransfixerForCausalLM",
    "TransfixerModel",
    "context_length",
    "default_label",
    "lm_head_flops",
    "family_of",
]
