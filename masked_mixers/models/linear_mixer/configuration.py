"""Configuration of the linear and near-linear masked mixers: a masked mixer with its switches set."""

from huggingface_hub.dataclasses import strict

from ..masked_mixer.configuration import MaskedMixerConfig

LINEAR_VARIANTS = ("linear", "relu", "near_linear")


@strict
class LinearMixerConfig(MaskedMixerConfig):
    """A masked mixer with (almost) no nonlinearity, to see how far pure token mixing goes.

    `variant` picks the model:

    - "linear": embedding -> `num_hidden_layers` x (x + Mix(x)) -> LM head. No norms, no
      activations: the whole trunk is one linear map per feature, so it can be collapsed into a
      single L x L mixing (`LinearMixerForCausalLM.collapse`).
    - "relu": the same trunk with a ReLU between it and the LM head (still collapsible: the
      ReLU comes after every mixing).
    - "near_linear": each block is x + Mix(x) then x + FF(x), with FF = Linear -> GELU -> Linear
      (`ff_mult` * d wide); still no norms. Not collapsible.

    The variant decides the masked mixer's switches (flat mixing, no layer norms, residuals on,
    a feed-forward only for "near_linear", no dropout); `__post_init__` sets them whatever was
    passed, so a config.json saved before this class was a MaskedMixerConfig (without those
    keys, whose defaults are a normed mixer) still loads as the model that was trained.
    """

    model_type = "linear_mixer"

    variant: str = "linear"

    def __post_init__(self, **kwargs):
        self.mixer_type = "flat"
        self.use_layer_norm = False
        self.use_residual = True
        self.use_feed_forward = self.variant == "near_linear"
        self.dropout = 0.0
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Called by the `@strict` machinery of `PreTrainedConfig`: reject impossible shapes early."""
        if self.variant not in LINEAR_VARIANTS:
            raise ValueError(f"variant must be one of {LINEAR_VARIANTS}, got {self.variant!r}")
        super().validate_architecture()


__all__ = ["LINEAR_VARIANTS", "LinearMixerConfig"]
