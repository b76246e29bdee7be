"""Configuration of the linear and near-linear masked mixers: a masked mixer with its switches set."""

from huggingface_hub.dataclasses import strict

from ..masked_mixer.configuration import MaskedMixerConfig

# variant -> the masked mixer switches it sets (no norms, residuals on and no dropout for every variant)
VARIANT_SWITCHES: dict[str, dict] = {
    "linear": dict(mixer_type="flat", use_feed_forward=False),
    "relu": dict(mixer_type="flat", use_feed_forward=False),
    # the reference's nearly linear block: x + conv(L->L) -> GELU -> conv(L->L), both causal, no feature feed-forward
    "near_linear": dict(mixer_type="expanded", expansion=1, use_feed_forward=False),
    # a named variant, not the reference: flat mixing plus a GELU feature feed-forward per block (this
    # project's "near_linear" before it followed the reference; its checkpoints load under this name)
    "near_linear_ff": dict(mixer_type="flat", use_feed_forward=True),
}
LINEAR_VARIANTS = tuple(VARIANT_SWITCHES)


@strict
class LinearMixerConfig(MaskedMixerConfig):
    """A masked mixer with (almost) no nonlinearity, to see how far pure token mixing goes.

    `variant` picks the model (the reference: blbadger/maskedmixers `mixer_lm/linear_mixer.py`):

    - "linear": embedding -> `num_hidden_layers` x (x + Mix(x)) -> LM head, Mix a causal-masked
      L x L mixing over positions. No norms, no activations, no feature feed-forward: the whole
      trunk is one linear map per feature, so it collapses into a single L x L mixing
      (`LinearMixerForCausalLM.collapse`).
    - "relu": the same trunk with a ReLU between it and the LM head (still collapsible: the
      ReLU comes after every mixing).
    - "near_linear" (the reference's nearly linear model): each block is
      x + W2 GELU(W1 x + b1) + b2, W1 and W2 causal-masked L x L mixings over positions (the
      masked mixer's "expanded" mixing with expansion 1); no norms, no feature feed-forward.
      Not collapsible.
    - "near_linear_ff" (a named variant, not the paper's): x + Mix(x) then x + FF(x), FF =
      Linear -> GELU -> Linear (`ff_mult` * d wide), no norms. A checkpoint saved as "near_linear"
      before that name followed the reference is this model: set its config.json's variant to
      "near_linear_ff" (loading it as "near_linear" is refused: its weights do not match).

    The variant decides the masked mixer's switches (VARIANT_SWITCHES; no layer norms, residuals
    on, no dropout); `__post_init__` sets them whatever was passed, so a config.json saved before
    this class was a MaskedMixerConfig (without those keys, whose defaults are a normed mixer)
    still loads as the model that was trained.
    """

    model_type = "linear_mixer"

    variant: str = "linear"

    def __post_init__(self, **kwargs):
        for name, value in VARIANT_SWITCHES.get(self.variant, {}).items():
            setattr(self, name, value)
        self.use_layer_norm = False
        self.use_residual = True
        self.dropout = 0.0
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Called by the `@strict` machinery of `PreTrainedConfig`: reject impossible shapes early."""
        if self.variant not in LINEAR_VARIANTS:
            raise ValueError(f"variant must be one of {LINEAR_VARIANTS}, got {self.variant!r}")
        super().validate_architecture()


__all__ = ["LINEAR_VARIANTS", "VARIANT_SWITCHES", "LinearMixerConfig"]
