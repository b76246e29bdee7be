"""Configuration of the masked mixer (Badger, arXiv 2409.01482), in Hugging Face form."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

MIXER_TYPES = ("flat", "expanded", "multihead")


def require_positive(config, *names: str) -> None:
    """Config validation shared by the mixer configs: every named size is at least 1."""
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")


@strict
class MaskedMixerConfig(PreTrainedConfig):
    """Size and switches of a masked mixer language model.

    `seq_len` is L, the longest input: the token-mixing matrices are L x L, so it is fixed when
    the model is built (an input of t <= L tokens uses the top-left t x t block). `hidden_size`
    is d_model. `mixer_type` chooses the token mixing of each block:

    - "flat": one masked L x L mixing;
    - "expanded": L -> expansion*L -> L, GELU between, both masked (position k of the wide
      layer belongs to sequence position k // expansion);
    - "multihead": `num_heads` heads, each its own projection d -> d/h and masked L x L mixing,
      concatenated and projected back to d.

    The ablation switches (`use_layer_norm`, `use_residual`, `use_feed_forward`) remove one part
    of every block, for the paper's flexibility experiments.

    `triangular_tile` > 0 computes the flat and multi-head token mixing as a blocked matmul over
    lower-triangular row tiles of that many rows, skipping the masked upper triangle (same values
    and gradients up to rounding; see triangular.py); 0 keeps the dense product. A speed switch
    only: it changes no weight.

    `padding_side` is the side the training examples were padded on (training.py sets it; None:
    not recorded). Positions are mixing rows, so it decides where a left-padded input sits: for
    "right", leading pads take no position and a prompt sits at positions 0.. however it is padded
    (batched pipelines, which pad left, then equal one-by-one generation); otherwise leading pads
    keep their positions, as in left-padded training (models/masked_mixer/positions.py).
    """

    model_type = "masked_mixer"
    attribute_map = {"max_position_embeddings": "seq_len"}  # L where Hugging Face tools look for it

    vocab_size: int = 4096
    hidden_size: int = 256
    num_hidden_layers: int = 8
    seq_len: int = 512
    mixer_type: str = "flat"
    num_heads: int = 4
    expansion: int = 2
    ff_mult: int = 4
    dropout: float = 0.0
    use_layer_norm: bool = True
    use_residual: bool = True
    use_feed_forward: bool = True
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False
    use_cache: bool = True
    triangular_tile: int = 0
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    padding_side: str | None = None

    def validate_architecture(self):
        """Called by the `@strict` machinery of `PreTrainedConfig`: reject impossible shapes early."""
        if self.mixer_type not in MIXER_TYPES:
            raise ValueError(f"mixer_type must be one of {MIXER_TYPES}, got {self.mixer_type!r}")
        require_positive(
            self, "vocab_size", "hidden_size", "num_hidden_layers", "seq_len", "num_heads", "expansion", "ff_mult"
        )
        if self.mixer_type == "multihead" and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of num_heads ({self.num_heads})")
        if self.triangular_tile < 0:
            raise ValueError(f"triangular_tile must be >= 0 (0: dense), got {self.triangular_tile}")
        if self.padding_side not in (None, "left", "right"):
            raise ValueError(f"padding_side must be 'left', 'right' or None, got {self.padding_side!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


__all__ = ["MaskedMixerConfig", "MIXER_TYPES", "require_positive"]
