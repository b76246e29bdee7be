"""The transfixer: a Llama decoder whose attention output also goes through a masked token mixing.

Each layer is transformers' own Llama decoder layer (LlamaAttention, LlamaMLP, LlamaRMSNorm,
rotary position embeddings) with one change after attention:

    a = Attn(RMSNorm(x))
    h = x + a + Mix(a)          # Mix: one masked L x L token mixing (masked_mixer/mixing.py)
    x = h + MLP(RMSNorm(h))

L is `max_position_embeddings`. The paper (Badger, arXiv 2409.01482) found this hybrid the most
efficient model it trained on TinyStories. The causal attention mask is built here and passed to
every layer explicitly, so causality never rests on an attention backend's default.

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

from ..masked_mixer.mixing import FlatTokenMixing, causal_mask


@strict
class TransfixerConfig(LlamaConfig):
    """A LlamaConfig; `max_position_embeddings` is also L, the size of each layer's token mixing."""

    model_type = "transfixer"

    use_cache: bool = False


def additive_causal_mask(attention_mask: torch.Tensor | None, t: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(batch or 1, 1, t, t) additive mask: 0 where query i may attend key j (j <= i, j not padding)."""
    allowed = causal_mask(t, t, device=device)[None, None]  # (1, 1, t, t)
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :].bool()  # (b, 1, t, t)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


class TransfixerDecoderLayer(LlamaDecoderLayer):
    """LlamaDecoderLayer plus a masked token mixing of the attention output."""

    def __init__(self, config: TransfixerConfig, layer_idx: int):
        super().__init__(config, layer_idx)
        self.token_mixing = FlatTokenMixing(config.max_position_embeddings)

    def forward(self, x, attention_mask, position_embeddings, padding_mask=None, **kwargs) -> torch.Tensor:
        attn, _ = self.self_attn(
            hidden_states=self.input_layernorm(x), attention_mask=attention_mask, position_embeddings=position_embeddings
        )
        x = x + attn + self.token_mixing(attn, padding_mask)  # (b, t, d): attention, then mix over t
        return x + self.mlp(self.post_attention_layernorm(x))  # (b, t, d): mix over d


class TransfixerPreTrainedModel(LlamaPreTrainedModel):
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
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        t = x.shape[1]
        if t > self.config.max_position_embeddings:
            raise ValueError(f"{t} tokens, but this transfixer was built for {self.config.max_position_embeddings}")
        mask = additive_causal_mask(attention_mask, t, x.dtype, x.device)
        position_embeddings = self.rotary_emb(x, torch.arange(t, device=x.device)[None])
        for layer in self.layers:
            x = layer(x, mask, position_embeddings, attention_mask)
        return BaseModelOutput(last_hidden_state=self.norm(x))


class TransfixerForCausalLM(TransfixerPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: TransfixerConfig):
        super().__init__(config)
        self.model = TransfixerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self, input_ids=None, attention_mask=None, labels=None, inputs_embeds=None, logits_to_keep: int = 0, **kwargs
    ) -> CausalLMOutputWithPast:
        kwargs.pop("use_cache", None)
        if kwargs.pop("cache", None) is not None:
            raise ValueError("the transfixer has no generation cache: generate with use_cache=False")
        hidden = self.model(input_ids, attention_mask, inputs_embeds).last_hidden_state
        logits = self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden)  # (b, t, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits)


__all__ = ["TransfixerConfig", "TransfixerForCausalLM", "TransfixerModel", "TransfixerPreTrainedModel"]
