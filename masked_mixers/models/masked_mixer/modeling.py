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
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast

from ..remote_code import SelfContained
from .cache import MaskedMixerCache, SlotBatch
from .configuration import MaskedMixerConfig
from .lm_head import CausalLMHeadMixin
from .mixing import TOKEN_MIXING_TYPES, build_token_mixing
from .positions import token_positions


class FeedForward(nn.Module):
    """Feature mixing, applied to every position independently.

    Every path (training, evaluation, cached decoding) calls `up` and `down` as modules, so
    whatever wraps or replaces them (PEFT adapters, `torch.ao` quantized linears, hooks) takes part.
    """

    def __init__(self, config: MaskedMixerConfig):
        super().__init__()
        inner = config.ff_mult * config.hidden_size
        self.up = nn.Linear(config.hidden_size, inner)
        self.down = nn.Linear(inner, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))  # (b, t, d) -> (b, t, ff_mult*d) -> (b, t, d)


class MixerBlock(GradientCheckpointingLayer):
    """Token mixing then feature mixing, each with its pre-norm and residual (both switchable).

    A GradientCheckpointingLayer: `model.activation_checkpointing_enable()` (or the Trainer's
    `activation_checkpointing=True`, `train.gradient_checkpointing` here) recomputes each block in the backward pass.
    """

    def __init__(self, config: MaskedMixerConfig):
        super().__init__()
        self.use_residual = config.use_residual
        norm = (
            (lambda: nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps))
            if config.use_layer_norm
            else nn.Identity
        )
        self.token_norm = norm()
        self.token_mixing = build_token_mixing(config)
        self.feature_norm = norm() if config.use_feed_forward else None
        self.feed_forward = FeedForward(config) if config.use_feed_forward else None
        self.dropout_p = config.dropout

    def _add(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        update = F.dropout(update, self.dropout_p, self.training) if self.dropout_p else update
        return x + update if self.use_residual else update

    def forward(
        self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, cached: tuple | None = None
    ) -> torch.Tensor:
        """`cached` = (SlotBatch, layer state): x holds only the new positions of a generation, and the
        token mixing reads the earlier ones from the cache (see cache.py).

        Every path calls the same sub-modules (norms, token mixing, feed-forward), so hooks, adapters
        and quantized replacements see cached decoding too.
        """
        mixing_args = (padding_mask,) if cached is None else (None, cached)
        x = self._add(x, self.token_mixing(self.token_norm(x), *mixing_args))  # (b, t, d): mix over t
        if self.feed_forward is not None:
            x = self._add(x, self.feed_forward(self.feature_norm(x)))  # (b, t, d): mix over d
        return x


class MaskedMixerPreTrainedModel(SelfContained, PreTrainedModel):
    config_class = MaskedMixerConfig
    config: MaskedMixerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["MixerBlock"]
    supports_gradient_checkpointing = True

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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        cache: MaskedMixerCache | None = None,
        sliding_window: bool = False,
        **kwargs,
    ) -> MaskedMixerOutput:
        """Hidden states of every column; positions follow `attention_mask` (see models/masked_mixer/positions.py).

        Without a mask the whole batch sits at positions 0..t-1. With one, the blocks run on
        positions ("slots") and each column reports its slot's output. `sliding_window` keeps
        only each row's generation window; `cache` continues a generation (see MaskedMixerCache).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (b, t, d)
        if cache is not None:
            if input_ids is None:
                raise ValueError("cached decoding needs input_ids (a re-prime recomputes from token ids)")
            return self._forward_cached(input_ids, x, attention_mask, cache, output_hidden_states)
        if attention_mask is None and not sliding_window:
            if x.shape[1] > self.config.seq_len:
                raise ValueError(
                    f"input has {x.shape[1]} tokens but this masked mixer was built for seq_len={self.config.seq_len}"
                )
            return self._output(self._run(x, None, keep_all=output_hidden_states))
        mask = attention_mask if attention_mask is not None else torch.ones(x.shape[:2], device=x.device)
        pos = token_positions(mask, self.config.seq_len, slide=sliding_window, leading_pads=self._leading_pads)
        hidden = self._run(pos.scatter(x), pos.valid(), keep_all=output_hidden_states)  # (b, S, d): slots
        return self._output([pos.gather(h) for h in hidden])  # back to (b, t, d) columns

    @property
    def _leading_pads(self) -> bool:
        """Whether leading pads keep their positions: not for a model trained on right-padded examples."""
        return getattr(self.config, "padding_side", None) != "right"

    def _run(self, x, padding_mask, at: SlotBatch | None = None, cache=None, keep_all=False) -> list[torch.Tensor]:
        """All blocks; returns [last hidden state] or, with keep_all, the input and every block's output."""
        hidden = [x]
        for i, layer in enumerate(self.layers):
            x = layer(x, padding_mask, None if cache is None else (at, cache.states[i]))
            hidden = hidden + [x] if keep_all else [x]
        return hidden

    @staticmethod
    def _output(hidden: list[torch.Tensor]) -> MaskedMixerOutput:
        return MaskedMixerOutput(last_hidden_state=hidden[-1], hidden_states=tuple(hidden) if len(hidden) > 1 else None)

    def _forward_cached(
        self, input_ids, x, attention_mask, cache: MaskedMixerCache, keep_all: bool
    ) -> MaskedMixerOutput:
        """First call: the (windowed) prompt fills the cache. Later calls: each new token continues its row."""
        b, t = input_ids.shape
        if cache.seen_tokens == 0:
            mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
            pos = token_positions(mask, self.config.seq_len, slide=True, leading_pads=self._leading_pads)
            num_slots = pos.num_slots
            rows = torch.arange(num_slots, device=x.device).expand(b, num_slots)
            at = cache.at(rows, pos.valid(), num_slots)
            cache.store(pos.scatter(input_ids), at)
            hidden = self._run(pos.scatter(x), at.valid, at, cache, keep_all)  # (b, S, d): slots
            hidden = [pos.gather(h) for h in hidden]  # back to (b, t, d) columns
            cache.lengths = pos.lengths.cpu()
        else:
            if attention_mask is not None and not bool(attention_mask[:, -t:].all()):
                raise ValueError("cached decoding continues with real tokens only (attention_mask 1 for new tokens)")
            steps = [self._decode_step(input_ids[:, i : i + 1], x[:, i : i + 1], cache, keep_all) for i in range(t)]
            hidden = steps[0] if t == 1 else [torch.cat(h, dim=1) for h in zip(*steps)]
        cache.seen_tokens += t
        return self._output(hidden)

    def _decode_step(self, token, x, cache: MaskedMixerCache, keep_all: bool) -> list[torch.Tensor]:
        """One new token per row (b, 1) at slot lengths[b], re-priming rows whose window is full."""
        lengths = cache.lengths.tolist()  # on the host: no device sync
        if max(lengths) >= self.config.seq_len:
            self._reprime(cache, (cache.lengths >= self.config.seq_len).nonzero().flatten())
            lengths = cache.lengths.tolist()
        low, high = min(lengths), max(lengths)
        if low == high:  # every row at one slot: the mixings read slices (SlotBatch.slot)
            at = cache.at_slot(high)
        else:
            at = cache.at(cache.lengths.to(x.device)[:, None], None, high + 1)  # rows: (b, 1), all real tokens
        cache.store(token, at)
        hidden = self._run(x, None, at, cache, keep_all)
        cache.lengths += 1
        return hidden

    def _reprime(self, cache: MaskedMixerCache, rows: torch.Tensor) -> None:
        """Slide the window of full rows: their last L//2 tokens, recomputed at positions 0..L//2-1."""
        device = cache.tokens.device
        rows = rows.to(device)
        tokens, valid = cache.window(rows)
        fresh = MaskedMixerCache(self, len(rows), cache.dtype, device)
        keep = cache.keep
        at = fresh.at(torch.arange(keep, device=device).expand(len(rows), keep), valid, keep)
        fresh.store(tokens, at)
        if keep:
            self._run(self.embed_tokens(tokens), valid, at, fresh)
        fresh.lengths[:] = keep
        cache.replace_rows(rows, fresh)


class MaskedMixerForCausalLM(CausalLMHeadMixin, MaskedMixerPreTrainedModel, GenerationMixin):
    """Masked mixer with a linear LM head; `labels` are shifted inside (-100 is ignored)."""

    trunk_class = MaskedMixerModel  # a family built on this model (linear_mixer) names its own

    def __init__(self, config: MaskedMixerConfig):
        super().__init__(config)
        self.attach_trunk_and_head(self.trunk_class(config))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        logits_to_keep: int = 0,
        cache: MaskedMixerCache | None = None,
        use_cache: bool | None = None,
        sliding_window: bool = False,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """`use_cache=True` starts a `MaskedMixerCache` (returned as `outputs.cache`); pass it back as
        `cache` with the next tokens. `sliding_window` lets generation run past seq_len (cache.py)."""
        kwargs.pop("return_dict", None)
        if cache is None and use_cache:
            batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
            cache = MaskedMixerCache(self.model, batch, self.model.embed_tokens.weight.dtype, self.device)
        out = self.model(
            input_ids, attention_mask, inputs_embeds, output_hidden_states, cache=cache, sliding_window=sliding_window
        )
        return self.causal_lm_output(out.last_hidden_state, labels, logits_to_keep, cache, out.hidden_states, **kwargs)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """generate() must not make a key/value cache: forward(use_cache=True) makes a MaskedMixerCache."""
        return False

    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, cache=None, **kwargs):
        """transformers' preparation, plus the sliding window so generation can run past seq_len.

        A decoding step with the cache needs only the new token ids (positions come from the
        cache), so it skips transformers' preparation (position ids, mask conversion, copies),
        which took about a tenth of a batch-1 step on a CPU.
        """
        if isinstance(cache, MaskedMixerCache) and cache.seen_tokens and next_sequence_length:
            for unused in ("position_ids", "cache_position", "inputs_embeds", "is_first_iteration"):
                kwargs.pop(unused, None)
            return {**kwargs, "input_ids": input_ids[:, -next_sequence_length:], "cache": cache, "sliding_window": True}
        inputs = super().prepare_inputs_for_generation(
            input_ids, next_sequence_length=next_sequence_length, cache=cache, **kwargs
        )
        inputs["sliding_window"] = True
        return inputs


__all__ = ["MaskedMixerModel", "MaskedMixerForCausalLM", "MaskedMixerPreTrainedModel", "MixerBlock"]
