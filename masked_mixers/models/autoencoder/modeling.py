"""One-vector-bottleneck autoencoders: masked mixer and Llama, the same shape (Badger, arXiv 2409.01482).

    tokens (b, t) -> embedding -> encoder stack (causal) -> hidden state at the last position (b, d)
      -> [compress d -> c -> expand c -> d] -> repeated at every position (b, t, d)
      -> decoder stack (causal) -> LM head -> logits (b, t, vocab)

The loss is the cross entropy of every position against its own input token (no shift; -100 is
ignored), so the decoder must rebuild the whole input from the one vector.

Which position is the bottleneck: always the last one, t - 1, as in the paper, whichever side the
pads are on. The encoder is causal and takes the attention mask: pads are zeroed before every
token mixing (mixer) or masked as attention keys (Llama), so position t - 1 reads every real token
and no pad. With right padding (the data default) t - 1 is a pad whose own stream is just the pad
embedding; with left padding or packing it is the last real token. One fixed position keeps the
mixer's position-specific weights for the bottleneck in one row of each mixing matrix.

The decoder sees the bottleneck and nothing else: no attention mask, no token, no length. Its
logits at padded positions are meaningless and ignored by the loss.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.models.llama.modeling_llama import (
    LlamaDecoderLayer,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)
from transformers.utils import ModelOutput

from ..attention_mask import causal_attention_bias
from ..masked_mixer.modeling import MaskedMixerPreTrainedModel, MixerBlock
from ..remote_code import SelfContained
from .configuration import AutoencodingMixerConfig, AutoencodingTransformerConfig


@dataclass
class AutoencoderOutput(ModelOutput):
    """loss: reconstruction cross entropy; logits: (b, t, vocab); bottleneck: (b, compression_dim or d)."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    bottleneck: torch.FloatTensor | None = None


def reconstruction_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Cross entropy of position i against token i (no shift); -100 is ignored.

    `num_items_in_batch` (passed by the HF Trainer under gradient accumulation) turns the mean
    into a sum over the batch divided by that count, as for transformers' own LM losses.
    """
    # (b, t, vocab) -> (b*t, vocab) against (b*t,)
    return fixed_cross_entropy(logits.flatten(0, 1).float(), labels.flatten().to(logits.device), num_items_in_batch)


class AutoencoderMixin:
    """Embedding -> encoder -> bottleneck -> repeat -> decoder -> LM head, for both architectures.

    A subclass builds `embed_tokens`, `lm_head` and its stacks, calls `_build_bottleneck`, and
    implements `encoder_states(x, attention_mask)` and `decoder_states(x)` on (b, t, d) tensors.
    `compress` is the one module every bit of information passes through: hooking its output
    holds the bottleneck fixed.
    """

    _tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}

    def _build_bottleneck(self, config) -> None:
        d, c = config.hidden_size, config.compression_dim
        self.compress = nn.Linear(d, c) if c else nn.Identity()
        self.expand = nn.Linear(c, d) if c else nn.Identity()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def _check_length(self, length: int) -> None:
        if length > self.max_length:
            raise ValueError(f"input has {length} tokens but this autoencoder was built for at most {self.max_length}")

    def encode(self, input_ids=None, attention_mask=None, inputs_embeds=None) -> torch.Tensor:
        """The bottleneck vector (b, compression_dim or d) of each input."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        self._check_length(x.shape[1])
        states = self.encoder_states(x, attention_mask)  # (b, t, d)
        return self.compress(states[:, -1])  # last position: (b, d) -> (b, c)

    def decode(self, bottleneck: torch.Tensor, length: int) -> torch.Tensor:
        """Logits (b, length, vocab) rebuilt from the bottleneck alone."""
        self._check_length(length)
        x = self.expand(bottleneck)  # (b, c) -> (b, d)
        x = x[:, None, :].expand(-1, length, -1)  # (b, d) -> (b, t, d): the same vector at every position
        return self.lm_head(self.decoder_states(x))  # (b, t, vocab)

    def forward(
        self, input_ids=None, attention_mask=None, labels=None, inputs_embeds=None, **kwargs
    ) -> AutoencoderOutput:
        bottleneck = self.encode(input_ids, attention_mask, inputs_embeds)
        length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        logits = self.decode(bottleneck, length)
        loss = None
        if labels is not None:
            loss = reconstruction_loss(logits, labels, kwargs.get("num_items_in_batch"))
        return AutoencoderOutput(loss=loss, logits=logits, bottleneck=bottleneck)


class AutoencodingMixer(AutoencoderMixin, MaskedMixerPreTrainedModel):
    """Masked mixer autoencoder: `MixerBlock`s in both stacks, no positional encoding.

    The decoder tells positions apart by its position-specific mixing weights, even though its
    input is the same vector everywhere.
    """

    config_class = AutoencodingMixerConfig
    config: AutoencodingMixerConfig
    base_model_prefix = ""

    def __init__(self, config: AutoencodingMixerConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.encoder = nn.ModuleList(MixerBlock(config) for _ in range(config.encoder_layers))
        self._build_bottleneck(config)
        self.decoder = nn.ModuleList(MixerBlock(config) for _ in range(config.decoder_layers))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def max_length(self) -> int:
        return self.config.seq_len

    def encoder_states(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        for block in self.encoder:
            x = block(x, attention_mask)  # (b, t, d); pads zeroed before each token mixing
        return x

    def decoder_states(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.decoder:
            x = block(x)  # (b, t, d)
        return x


class AutoencodingTransformer(AutoencoderMixin, SelfContained, LlamaPreTrainedModel):
    """Llama autoencoder: transformers' own `LlamaDecoderLayer`s, rotary embeddings and RMSNorm.

    Each stack ends in an RMSNorm as `LlamaModel` does. The causal mask is passed explicitly (see
    models/attention_mask.py). See `AutoencodingTransformerConfig.decoder_position_embedding`
    for why the decoder input gets a learned position embedding by default.
    """

    config_class = AutoencodingTransformerConfig
    config: AutoencodingTransformerConfig
    base_model_prefix = ""

    def __init__(self, config: AutoencodingTransformerConfig):
        super().__init__(config)
        d, n_enc = config.hidden_size, config.encoder_layers
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.rotary_emb = LlamaRotaryEmbedding(config)
        self.encoder = nn.ModuleList(LlamaDecoderLayer(config, i) for i in range(n_enc))
        self.encoder_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
        self._build_bottleneck(config)
        self.decoder_positions = (
            nn.Embedding(config.max_position_embeddings, d) if config.decoder_position_embedding else None
        )
        self.decoder = nn.ModuleList(LlamaDecoderLayer(config, n_enc + i) for i in range(config.decoder_layers))
        self.decoder_norm = LlamaRMSNorm(d, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.post_init()

    @property
    def max_length(self) -> int:
        return self.config.max_position_embeddings

    def _run_stack(self, layers: nn.ModuleList, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        t = x.shape[1]
        position_ids = torch.arange(t, device=x.device)[None]  # (1, t)
        rotary = self.rotary_emb(x, position_ids)  # (cos, sin), each (1, t, head_dim)
        bias = causal_attention_bias(attention_mask, t, x.dtype, x.device)  # (b|1, 1, t, t)
        for layer in layers:
            x = layer(x, attention_mask=bias, position_ids=position_ids, position_embeddings=rotary)  # (b, t, d)
        return x

    def encoder_states(self, x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.encoder_norm(self._run_stack(self.encoder, x, attention_mask))

    def decoder_states(self, x: torch.Tensor) -> torch.Tensor:
        if self.decoder_positions is not None:
            x = x + self.decoder_positions.weight[: x.shape[1]]  # (b, t, d) + (t, d)
        return self.decoder_norm(self._run_stack(self.decoder, x, None))


__all__ = [
    "AutoencoderOutput",
    "AutoencodingMixer",
    "AutoencodingTransformer",
    "reconstruction_loss",
]
