"""A Llama decoder whose layer norms, residual connections or feed-forward can be switched off,
or whose feed-forward can be replaced by a second self-attention (`feed_forward_attention`).

The paper's flexibility experiment trains transformers without one of these parts. transformers'
`LlamaDecoderLayer` hard-wires all three, so this model composes transformers' own Llama modules
(`LlamaAttention`, `LlamaMLP`, `LlamaRMSNorm`, `LlamaRotaryEmbedding`) in a small decoder of its
own instead of forking the Llama code. Parameter names match `LlamaForCausalLM`, so with every
switch on the two models load each other's weights and compute the same logits.

The causal mask (models/attention_mask.py, an additive float mask of shape (batch, 1, t, t)) is
passed explicitly to every attention call, never left to an attention backend's `is_causal`
default, so causality does not depend on which backend runs. Rotary positions count real tokens
(`position_ids_from_mask`), as transformers' generate() makes them for Llama, so a left-padded
prompt sits at the positions it has alone. There is no KV cache: generation recomputes the
prefix, which is fine for the small ablation models this exists for.
"""

from __future__ import annotations

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import GenerationMixin, LlamaConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaMLP, LlamaRMSNorm, LlamaRotaryEmbedding

from ..attention_mask import causal_attention_bias
from ..masked_mixer.lm_head import CausalLMHeadMixin
from ..remote_code import SelfContained


@strict
class AblatedLlamaConfig(LlamaConfig):
    """`LlamaConfig` plus the ablation switches (the three on and feed_forward_attention off = plain Llama).

    feed_forward_attention: each block's MLP slot holds a `LlamaAttention` instead (its own pre-norm
    and residual, as the MLP's), so the block is attention twice; needs use_feed_forward.
    """

    model_type = "llama_ablated"

    use_layer_norm: bool = True
    use_residual: bool = True
    use_feed_forward: bool = True
    feed_forward_attention: bool = False
    use_cache: bool = False  # no KV cache: generate() must hand every step the whole text


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(b, t) rotary positions that count real tokens: cumsum - 1, clamped at 0 (leading pads at 0).

    What transformers' generate() gives Llama: a left-padded prompt's tokens sit at 0, 1, ...
    whatever the padding in front of them, so a batch gives each prompt what it gets alone.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class AblatedLlamaDecoderLayer(nn.Module):
    """Pre-norm attention then pre-norm MLP (or a second attention), as `LlamaDecoderLayer`, each part switchable."""

    def __init__(self, config: AblatedLlamaConfig, layer_idx: int):
        super().__init__()
        if config.feed_forward_attention and not config.use_feed_forward:
            raise ValueError("feed_forward_attention replaces the feed-forward, so it needs use_feed_forward true")
        self.use_residual = config.use_residual
        norm = (
            (lambda: LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps))
            if config.use_layer_norm
            else nn.Identity
        )
        self.input_layernorm = norm()
        self.self_attn = LlamaAttention(config, layer_idx)
        self.post_attention_layernorm = norm() if config.use_feed_forward else None
        self.mlp = LlamaMLP(config) if config.use_feed_forward and not config.feed_forward_attention else None
        self.feed_forward_attn = LlamaAttention(config, layer_idx) if config.feed_forward_attention else None

    def _add(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        return x + update if self.use_residual else update

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        attended, _ = self.self_attn(
            self.input_layernorm(x), position_embeddings=position_embeddings, attention_mask=mask
        )
        x = self._add(x, attended)  # (b, t, d): mix over t
        if self.mlp is not None:
            x = self._add(x, self.mlp(self.post_attention_layernorm(x)))  # (b, t, d): mix over d
        elif self.feed_forward_attn is not None:  # the MLP's slot, mixing over t once more
            attended, _ = self.feed_forward_attn(
                self.post_attention_layernorm(x), position_embeddings=position_embeddings, attention_mask=mask
            )
            x = self._add(x, attended)
        return x


class AblatedLlamaPreTrainedModel(SelfContained, PreTrainedModel):
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
        self.norm = (
            LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps) if config.use_layer_norm else nn.Identity()
        )
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        position_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        """hidden_states (when asked) follow LlamaModel: embeddings, then each layer, the last after the final norm
        (before it when `config.tie_last_hidden_states` is False, as in transformers' own models).

        Positions: `position_ids` (b or 1, t) if given, else counted from `attention_mask`
        (`position_ids_from_mask`), else 0..t-1.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        t = x.shape[1]
        if position_ids is None:
            position_ids = (
                torch.arange(t, device=x.device)[None]
                if attention_mask is None
                else position_ids_from_mask(attention_mask)
            )
        mask = causal_attention_bias(attention_mask, t, x.dtype, x.device)  # (b|1, 1, t, t)
        position_embeddings = self.rotary_emb(x, position_ids=position_ids)
        hidden_states = [x]
        for layer in self.layers:
            x = layer(x, mask, position_embeddings)
            hidden_states.append(x)
        x = self.norm(x)
        if getattr(
            self.config, "tie_last_hidden_states", True
        ):  # transformers' switch: False keeps the last layer's own output
            hidden_states[-1] = x
        return BaseModelOutput(
            last_hidden_state=x, hidden_states=tuple(hidden_states) if output_hidden_states else None
        )


class AblatedLlamaForCausalLM(CausalLMHeadMixin, AblatedLlamaPreTrainedModel, GenerationMixin):
    """`AblatedLlamaModel` with a linear LM head; `labels` are shifted inside (-100 is ignored)."""

    def __init__(self, config: AblatedLlamaConfig):
        super().__init__(config)
        self.attach_trunk_and_head(AblatedLlamaModel(config))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        logits_to_keep: int = 0,
        position_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        for unused in ("use_cache", "cache_position"):
            kwargs.pop(unused, None)
        if kwargs.pop("cache", None) is not None or kwargs.pop("past_key_values", None) is not None:
            # a cache would make generate() hand over only the newest token: refuse rather than mispredict
            raise ValueError("the ablated Llama has no generation cache: generate with use_cache=False")
        out = self.model(input_ids, attention_mask, inputs_embeds, output_hidden_states, position_ids)
        return self.causal_lm_output(
            out.last_hidden_state, labels, logits_to_keep, hidden_states=out.hidden_states, **kwargs
        )


__all__ = ["AblatedLlamaConfig", "AblatedLlamaForCausalLM", "AblatedLlamaModel", "position_ids_from_mask"]
