"""Configuration of the linear and near-linear masked mixers, in Hugging Face form."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ..masked_mixer.configuration import require_positive

LINEAR_VARIANTS = ("linear", "relu", "near_linear")


@strict
class LinearMixerConfig(PreTrainedConfig):
    """A masked mixer with (almost) no nonlinearity, to see how far pure token mixing goes.

    `variant` picks the model:

    - "linear": embedding -> `num_hidden_layers` x (x + Mix(x)) -> LM head. No norms, no
      activations: the whole trunk is one linear map per feature, so it can be collapsed into a
      single L x L mixing (`LinearMixerForCausalLM.collapse`).
    - "relu": the same trunk with a ReLU between it and the LM head (still collapsible: the
      ReLU comes after every mixing).
    - "near_linear": each block is x + Mix(x) then x + FF(x), with FF = Linear -> GELU -> Linear
      (`ff_mult` * d wide); still no norms. Not collapsible.

    `seq_len` is L, the size of the L x L token-mixing matrices (inputs of t <= L tokens use the
    top-left t x t block). `hidden_size` is d_model.
    """

    model_type = "linear_mixer"
    attribute_map = {"max_position_embeddings": "seq_len"}  # L where Hugging Face tools look for it

    vocab_size: int = 4096
    hidden_size: int = 256
    num_hidden_layers: int = 8
    seq_len: int = 512
    variant: str = "linear"
    ff_mult: int = 4
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def validate_architecture(self):
        """Called by the `@strict` machinery of `PreTrainedConfig`: reject impossible shapes early."""
        if self.variant not in LINEAR_VARIANTS:
            raise ValueError(f"variant must be one of {LINEAR_VARIANTS}, got {self.variant!r}")
        require_positive(self, "vocab_size", "hidden_size", "num_hidden_layers", "seq_len", "ff_mult")


__all__ = ["LINEAR_VARIANTS", "LinearMixerConfig"]
