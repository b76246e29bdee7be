"""The transfixer: a Llama decoder whose attention output also goes through a masked token mixing.

Each layer is transformers' own Llama decoder layer (LlamaAttention, LlamaMLP, LlamaRMSNorm,
rotary position embeddings) with one change after attention:

    a = Attn(RMSNorm(x))
    h = x + a + Mix(a)          # Mix: one masked L x L token mixing (masked_mixer/mixing.py)
    x = h + MLP(RMSNorm(h))

L is `max_position_embeddings`. The paper (Badger, arXiv 2409.01482) found this hybrid the most
efficient model it trained on TinyStories. The causal attention mask (models/attention_mask.py)
is passed to every layer explicitly, so causality never rests on an attention backend's default.

Positions are mixing rows, so with an attention mask they follow it (models/masked_mixer/positions.py), as
in the masked mixer: a pad after a real token takes no position, and leading pads keep theirs unless
the model was trained on right-padded examples (`config.padding_side == "right"`, recorded by
training as for the masked mixer): then a left-padded prompt sits at positions 0.. as if alone. The
layers run on positions ("slots"): the rotary position of a token and its mixing row are both
its slot index, and each column reports its slot's output. A prompt thus gets the same outputs
alone as in a batch of prompts of other lengths, padded on either side.

No generation cache: each new token recomputes the prefix (`use_cache` defaults to False, and a
cache passed in is refused rather than silently misused).
"""

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import GenerationMixin, LlamaConfig
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import (
    LlamaDecoderLayer,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
)

from ..attention_mask import causal_attention_bias
from ..masked_mixer.lm_head import CausalLMHeadMixin
from ..masked_mixer.mixing import FlatTokenMixing
from ..masked_mixer.positions import token_positions
from ..remote_code import SelfContained


@strict
class TransfixerConfig(LlamaConfig):
    """A LlamaConfig; `max_position_embeddings` is also L, the size of each layer's token mixing.

    `padding_side`: the side the training examples were padded on (None: not recorded, as in runs
    saved before it was; leading pads then keep their positions).
    """

    model_type = "transfixer"

    use_cache: bool = False
    padding_side: str | None = None

    def validate_architecture(self):
        super().validate_architecture()
        if self.padding_side not in (None, "left", "right"):
            raise ValueError(f"padding_side must be 'left', 'right' or None, got {self.padding_side!r}")


class TransfixerDecoderLayer(LlamaDecoderLayer):
    """LlamaDecoderLayer plus a masked token mixing of the attention output."""

    def __init__(self, config: TransfixerConfig, layer_idx: int):
        super().__init__(config, layer_idx)
        self.token_mixing = FlatTokenMixing(config.max_position_embeddings)

    def forward(self, x, attention_mask, position_embeddings, padding_mask=None, **kwargs) -> torch.Tensor:
        attn, _ = self.self_attn(
            hidden_states=self.input_layernorm(x),
            attention_mask=attention_mask,
            position_embeddings=position_embeddings,
        )
        x = x + attn + self.token_mixing(attn, padding_mask)  # (b, t, d): attention, then mix over t
        return x + self.mlp(self.post_attention_layernorm(x))  # (b, t, d): mix over d


class TransfixerPreTrainedModel(SelfContained, LlamaPreTrainedModel):
    config_class = TransfixerConfig
    config: TransfixerConfig
    _no_split_modules = ["TransfixerDecoderLayer"]
    _supports_flash_attn = False  # flash kernels take no explicit 4D mask
    _supports_flex_attn = False
    _can_compile_fullgraph = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Llama's initialisation; token mixings as in the masked mixer (masked entries zero)."""
        if isinstance(module, FlatTokenMixing):
            module.reset_parameters()
        else:
            super()._init_weights(module)


class TransfixerModel(TransfixerPreTrainedModel):
    def __init__(self, config: TransfixerConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(TransfixerDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs) -> BaseModelOutput:
        """Hidden states (b, t, d) of every column; positions follow `attention_mask` (see the module docstring)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        L = self.config.max_position_embeddings
        if attention_mask is None:
            if x.shape[1] > L:
                raise ValueError(f"input has {x.shape[1]} tokens but this transfixer was built for seq_len={L}")
            return BaseModelOutput(last_hidden_state=self.norm(self._run(x, None)))
        pos = token_positions(attention_mask, L, leading_pads=self.config.padding_side != "right")
        hidden = self._run(pos.scatter(x), pos.valid())  # (b, S, d): slots
        return BaseModelOutput(last_hidden_state=self.norm(pos.gather(hidden)))  # back to (b, t, d) columns

    def _run(self, x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        """All layers over (b, S, d) positions; `valid` (b, S) marks real tokens (None: all real)."""
        S = x.shape[1]
        mask = causal_attention_bias(valid, S, x.dtype, x.device)  # (b|1, 1, S, S)
        position_embeddings = self.rotary_emb(x, torch.arange(S, device=x.device)[None])  # rotary position = slot
        for layer in self.layers:
            x = layer(x, mask, position_embeddings, valid)
        return x


class TransfixerForCausalLM(CausalLMHeadMixin, TransfixerPreTrainedModel, GenerationMixin):
    def __init__(self, config: TransfixerConfig):
        super().__init__(config)
        self.attach_trunk_and_head(TransfixerModel(config))

    def forward(
        self, input_ids=None, attention_mask=None, labels=None, inputs_embeds=None, logits_to_keep: int = 0, **kwargs
    ) -> CausalLMOutputWithPast:
        for unused in ("use_cache", "position_ids", "cache_position"):
            kwargs.pop(unused, None)  # positions come from attention_mask
        if kwargs.pop("cache", None) is not None:
            raise ValueError("the transfixer has no generation cache: generate with use_cache=False")
        hidden = self.model(input_ids, attention_mask, inputs_embeds).last_hidden_state
        return self.causal_lm_output(hidden, labels, logits_to_keep, **kwargs)


__all__ = ["TransfixerConfig", "TransfixerForCausalLM", "TransfixerModel", "TransfixerPreTrainedModel"]
