"""Linear and near-linear masked mixers, and the collapse of a deep linear mixer into one layer.

A fully linear block is x <- x + Mix(x) = (I + W_k) x + b_k 1^T, with W_k a lower-triangular
L x L matrix and b_k a per-position bias shared by all d features. Stacking K of them gives

    x_K = P x_0 + c,   P = (I + W_K) ... (I + W_1),   c = sum_k (I + W_K) ... (I + W_{k+1}) b_k

(the bias of layer k still passes through the mixing of every later layer). P is a product of
lower-triangular matrices, so it is lower-triangular: the deep model *is* a one-layer masked
mixer with W = P - I and bias c. `collapse()` builds that model; generating with it costs one
weighted sum over the cached embeddings per token, whatever the original depth.

Padding: every mixing zeroes padded inputs. For unpadded or right-padded inputs no path from a
real position runs through a padded one, so the collapsed and deep models agree on every real
position; with left padding the deep model drops the biases added at the padded positions
while the collapsed one keeps their images, so the two differ there.
"""

import copy

import torch
from torch import nn
from transformers import GenerationMixin
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from ..masked_mixer.mixing import FlatTokenMixing, _apply_padding
from ..masked_mixer.modeling import FeedForward, MaskedMixerPreTrainedModel
from .cache import TokenMixingCache, TokenMixingLayer
from .configuration import LinearMixerConfig


def mix_new_positions(mixing: FlatTokenMixing, states: torch.Tensor, start: int) -> torch.Tensor:
    """Rows start..t-1 of a masked mixing over all inputs so far, (batch, t, d) -> (batch, t - start, d).

    The same numbers as `mixing(states)[:, start:]`, without computing the earlier rows again.
    """
    t = states.shape[1]
    w = torch.tril(mixing.weight[:t, :t])[start:]  # (t - start, t): the new positions' rows
    return torch.matmul(w, states) + mixing.bias[start:t, None]


class LinearMixerBlock(nn.Module):
    """x + Mix(x), then (near-linear only) x + FF(x); no norms."""

    def __init__(self, config: LinearMixerConfig):
        super().__init__()
        self.token_mixing = FlatTokenMixing(config.seq_len)
        self.feed_forward = FeedForward(config) if config.variant == "near_linear" else None

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, cache_layer: TokenMixingLayer | None = None
    ) -> torch.Tensor:
        if cache_layer is None:
            x = x + self.token_mixing(x, padding_mask)  # (b, t, d): mix over t
        else:  # x holds only the new positions; earlier inputs come from the cache
            start = cache_layer.get_seq_length()
            states = cache_layer.append(_apply_padding(x, padding_mask))  # (b, start + s, d)
            x = x + mix_new_positions(self.token_mixing, states, start)
        if self.feed_forward is not None:
            x = x + self.feed_forward(x)  # (b, t, d): mix over d
        return x


class LinearMixerPreTrainedModel(MaskedMixerPreTrainedModel):
    """Same initialisation as the masked mixer (PyTorch defaults, masked entries zero)."""

    config_class = LinearMixerConfig
    config: LinearMixerConfig
    _no_split_modules = ["LinearMixerBlock"]


def _generation_cache(cache: Cache | None, use_cache: bool | None, num_layers: int) -> TokenMixingCache | None:
    """The cache to use: ours, or a fresh one in place of the empty generic cache generate() made."""
    if isinstance(cache, TokenMixingCache):
        return cache
    if cache is not None and cache.get_seq_length() > 0:
        raise ValueError(f"a masked mixer needs a TokenMixingCache, got a filled {type(cache).__name__}")
    return TokenMixingCache(num_layers) if (use_cache or cache is not None) else None


class LinearMixerModel(LinearMixerPreTrainedModel):
    """Embedding and linear mixer blocks, no head."""

    def __init__(self, config: LinearMixerConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LinearMixerBlock(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, s, d)
        cache = _generation_cache(cache, use_cache, len(self.layers))
        past = cache.get_seq_length() if cache is not None else 0
        if past + x.shape[1] > self.config.seq_len:
            raise ValueError(f"{past + x.shape[1]} tokens, but this mixer was built for seq_len={self.config.seq_len}")
        # generate() passes the mask of the whole sequence; the new positions are its last s columns
        padding_mask = attention_mask[:, -x.shape[1] :] if attention_mask is not None else None
        for i, layer in enumerate(self.layers):
            x = layer(x, padding_mask, cache.layers[i] if cache is not None else None)
        return BaseModelOutputWithPast(last_hidden_state=x, cache=cache)


class LinearMixerForCausalLM(LinearMixerPreTrainedModel, GenerationMixin):
    """Linear mixer with an LM head (a ReLU before it for variant "relu"); labels are shifted inside."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LinearMixerConfig):
        super().__init__(config)
        self.model = LinearMixerModel(config)
        self.head_act = nn.ReLU() if config.variant == "relu" else nn.Identity()
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        out = self.model(input_ids, attention_mask, inputs_embeds, cache=cache, use_cache=use_cache)
        hidden = out.last_hidden_state[:, -logits_to_keep:] if logits_to_keep else out.last_hidden_state
        logits = self.lm_head(self.head_act(hidden))  # (b, t, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=out.cache)

    @torch.no_grad()
    def collapse(self) -> "LinearMixerForCausalLM":
        """An equivalent one-layer model: mixing P - I and bias c (see the module docstring).

        The product is accumulated in float64 and cast back, so the collapsed logits match the
        deep ones to rounding. Only the "linear" and "relu" variants have a linear trunk.
        """
        if self.config.variant == "near_linear":
            raise ValueError("a near-linear mixer has a GELU in every block and cannot be collapsed")
        L = self.config.seq_len
        dtype = self.model.layers[0].token_mixing.weight.dtype
        eye = torch.eye(L, dtype=torch.float64, device=self.device)
        product, bias = eye, torch.zeros(L, dtype=torch.float64, device=self.device)
        for layer in self.model.layers:
            step = eye + torch.tril(layer.token_mixing.weight.double())  # (L, L): I + W_k
            product, bias = step @ product, step @ bias + layer.token_mixing.bias.double()
        config = copy.deepcopy(self.config)
        config.num_hidden_layers = 1
        collapsed = LinearMixerForCausalLM(config).to(device=self.device, dtype=self.dtype)
        collapsed.load_state_dict(
            {
                "model.embed_tokens.weight": self.model.embed_tokens.weight,
                "model.layers.0.token_mixing.weight": (product - eye).to(dtype),
                "model.layers.0.token_mixing.bias": bias.to(dtype),
                "lm_head.weight": self.lm_head.weight,
            }
        )
        return collapsed.train(self.training)


__all__ = ["LinearMixerBlock", "LinearMixerForCausalLM", "LinearMixerModel", "LinearMixerPreTrainedModel"]
