"""A Llama decoder whose layer norms, residual connections or feed-forward can be switched off.

The paper's flexibility experiment trains transformers without one of these parts. transformers'
`LlamaDecoderLayer` hard-wires all three, so this model composes transformers' own Llama modules
(`LlamaAttention`, `LlamaMLP`, `LlamaRMSNorm`, `LlamaRotaryEmbedding`) in a small decoder of its
own instead of forking the Llama code. Parameter names match `LlamaForCausalLM`, so with every
switch on the two models load each other's weights and compute the same logits.

The causal mask is built here and passed explicitly to every attention call (an additive float
mask of shape (batch, 1, t, t)), never left to an attention backend's `is_causal` default, so
causality does not depend on which backend runs. There is no KV cache: generation recomputes
the prefix, which is fine for the small ablation models this exists for.
"""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import GenerationMixin, LlamaConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaMLP, LlamaRMSNorm, LlamaRotaryEmbedding


@strict
class AblatedLlamaConfig(LlamaConfig):
    """`LlamaConfig` plus the three ablation switches (all on = plain Llama)."""

    model_type = "llama_ablated"

    use_layer_norm: bool = True
    use_residual: bool = True
    use_feed_forward: bool = True


def explicit_causal_mask(attention_mask: torch.Tensor | None, batch: int, t: int, dtype, device) -> torch.Tensor:
    """Additive (batch, 1, t, t) mask: 0 where query i may read key j (j <= i and j not padding).

    Blocked entries hold the dtype's most negative value rather than -inf, so a query whose keys
    are all padding (left padding) gets a uniform softmax instead of NaN, as in transformers.
    """
    allowed = torch.ones(t, t, dtype=torch.bool, device=device).tril()[None, None]  # (1, 1, t, t)
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :t].bool()  # keys that are real tokens
    allowed = allowed.expand(batch, 1, t, t)
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


class AblatedLlamaDecoderLayer(nn.Module):
    """Pre-norm attention then pre-norm MLP, as `LlamaDecoderLayer`, each part switchable."""

    def __init__(self, config: AblatedLlamaConfig, layer_idx: int):
        super().__init__()
        self.use_residual = config.use_residual
        norm = (lambda: LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)) if config.use_layer_norm else nn.Identity
        self.input_layernorm = norm()
        self.self_attn = LlamaAttention(config, layer_idx)
        self.post_attention_layernorm = norm() if config.use_feed_forward else None
        self.mlp = LlamaMLP(config) if config.use_feed_forward else None

    def _add(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return x + update if self.use_residual else update

    def forward(self, x: torch.Tensor, mask: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        attended, _ = self.self_attn(self.input_layernorm(x), position_embeddings=position_embeddings, attention_mask=mask)
        x = self._add(x, attended)  # (b, t, d): mix over t
        if self.mlp is not None:
            x = self._add(x, self.mlp(self.post_attention_layernorm(x)))  # (b, t, d): mix over d
        return x


class AblatedLlamaPreTrainedModel(PreTrainedModel):
    config_class = AblatedLlamaConfig
    config: AblatedLlamaConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["AblatedLlamaDecoderLayer"]
    _supports_sdpa = True  # eager and sdpa take the explicit additive mask; flash attention would not
    _supports_attention_backend = True


class AblatedLlamaModel(AblatedLlamaPreTrainedModel):
    """Embedding, decoder layers and (when layer norms are on) the final RMSNorm."""

    def __init__(self, config: AblatedLlamaConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(AblatedLlamaDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps) if config.use_layer_norm else nn.Identity()
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> BaseModelOutput:
        """hidden_states (when asked) follow LlamaModel: embeddings, then each layer, the last after the final norm."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        b, t, _ = x.shape
        mask = explicit_causal_mask(attention_mask, b, t, x.dtype, x.device)
        position_embeddings = self.rotary_emb(x, position_ids=torch.arange(t, device=x.device)[None])
        hidden_states = [x]
        for layer in self.layers:
            x = layer(x, mask, position_embeddings)
            hidden_states.append(x)
        x = self.norm(x)
        hidden_states[-1] = x
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden_states) if output_hidden_states else None)


class AblatedLlamaForCausalLM(AblatedLlamaPreTrainedModel, GenerationMixin):
    """`AblatedLlamaModel` with a linear LM head; `labels` are shifted inside (-100 is ignored)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: AblatedLlamaConfig):
        super().__init__(config)
        self.model = AblatedLlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        for unused in ("use_cache", "cache", "past_key_values", "position_ids"):
            kwargs.pop(unused, None)  # no KV cache: generate() recomputes the prefix
        out = self.model(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (b, t, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=out.hidden_states)


__all__ = ["AblatedLlamaConfig", "AblatedLlamaForCausalLM", "AblatedLlamaModel", "explicit_causal_mask"]
