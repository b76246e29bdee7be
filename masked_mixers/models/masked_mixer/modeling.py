"""The masked mixer language model (Badger, arXiv 2409.01482) as a Hugging Face model.

A block is

    x = x + Mix(LN1(x))   # token mixing over positions (see mixing.py)
    x = x + FF(LN2(x))    # feature mixing: Linear(d, ff_mult*d) -> GELU -> Linear(ff_mult*d, d)

with a token embedding in front and a linear LM head behind; there is no positional encoding,
since position lives in the position-specific mixing weights W[i, j].
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast

from .configuration import MaskedMixerConfig
from .mixing import TOKEN_MIXING_TYPES, build_token_mixing


class FeedForward(nn.Module):
    """Feature mixing, applied to every position independently."""

    def __init__(self, config: MaskedMixerConfig):
        super().__init__()
        inner = config.ff_mult * config.hidden_size
        self.up = nn.Linear(config.hidden_size, inner)
        self.act = nn.GELU()
        self.down = nn.Linear(inner, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class MixerBlock(nn.Module):
    """Token mixing then feature mixing, each with its pre-norm and residual (both switchable)."""

    def __init__(self, config: MaskedMixerConfig):
        super().__init__()
        self.use_residual = config.use_residual
        norm = (lambda: nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)) if config.use_layer_norm else nn.Identity
        self.token_norm = norm()
        self.token_mixing = build_token_mixing(config)
        self.feature_norm = norm() if config.use_feed_forward else None
        self.feed_forward = FeedForward(config) if config.use_feed_forward else None
        self.dropout = nn.Dropout(config.dropout)

    def _add(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        update = self.dropout(update)
        return x + update if self.use_residual else update

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self._add(x, self.token_mixing(self.token_norm(x), padding_mask))  # (b, t, d): mix over t
        if self.feed_forward is not None:
            x = self._add(x, self.feed_forward(self.feature_norm(x)))  # (b, t, d): mix over d
        return x


class MaskedMixerPreTrainedModel(PreTrainedModel):
    config_class = MaskedMixerConfig
    config: MaskedMixerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["MixerBlock"]
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """PyTorch's default initialisation, which the paper's reference models trained with.

        Uses `transformers.initialization` so weights loaded by `from_pretrained` are left alone.
        A tied embedding doubles as the LM head, so it starts small (initializer_range) to keep
        the first logits sane; an untied one is N(0, 1) like `nn.Embedding`'s default.
        """
        if isinstance(module, TOKEN_MIXING_TYPES):
            module.reset_parameters()
        elif isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.weight.shape[1])
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            std = self.config.initializer_range if self.config.tie_word_embeddings else 1.0
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


@dataclass
class MaskedMixerOutput(BaseModelOutput):
    """Hidden states of the base model (`last_hidden_state`: (batch, t, d))."""


class MaskedMixerModel(MaskedMixerPreTrainedModel):
    """Embedding and mixer blocks, no head: the trunk used for language modeling and embeddings."""

    def __init__(self, config: MaskedMixerConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(MixerBlock(config) for _ in range(config.num_hidden_layers))
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        **kwargs,
    ) -> MaskedMixerOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        if x.shape[1] > self.config.seq_len:
            raise ValueError(
                f"input has {x.shape[1]} tokens but this masked mixer was built for seq_len={self.config.seq_len}"
            )
        hidden_states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, attention_mask)
            if hidden_states is not None:
                hidden_states.append(x)
        return MaskedMixerOutput(last_hidden_state=x, hidden_states=tuple(hidden_states) if hidden_states else None)


class MaskedMixerForCausalLM(MaskedMixerPreTrainedModel, GenerationMixin):
    """Masked mixer with a linear LM head; `labels` are shifted inside (-100 is ignored)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MaskedMixerConfig):
        super().__init__(config)
        self.model = MaskedMixerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

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
        kwargs.pop("use_cache", None)
        kwargs.pop("cache", None)
        out = self.model(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        hidden = out.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)  # (b, t, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=out.hidden_states)


__all__ = ["MaskedMixerModel", "MaskedMixerForCausalLM", "MaskedMixerPreTrainedModel", "MixerBlock"]
