"""Bidirectional language models: every token predicted from both sides, without masking tokens.

Two causal trunks read the same tokens (Masked Mixers II):

- the forward stream runs over the tokens in order: its output F[m] has seen tokens 0..m;
- the backward stream runs over the tokens reversed, which makes its token mixing
  upper-triangular in the original order: its output B[m] has seen tokens m..len-1.

The prediction of token n reads F[n - 1] and B[n + 1] (zero past either end):

    logits[n] = head(F[n - 1] + B[n + 1])      # has seen tokens 0..n-1 and n+1..len-1, never n

which is the paper's "upper-triangular mixing offset by two", written as a shift. The streams
meet only here, after the last block. Exchanging them inside the blocks leaks: if after block 1
F[m] absorbed B[m + 2] (tokens >= m + 2, harmless for target m + 1), block 2 mixes F[m] into
F[m + 1], whose target m + 2 it now contains (tests/test_bidirectional.py shows it).

Loss convention: `labels` are the input tokens themselves (-100 at padding), *not* shifted:
logits[:, n] predicts labels[:, n]. Position 0 is predicted from the backward stream alone and
the last real token from the forward stream alone. The classes are not "...ForCausalLM" on
purpose, so that HF Trainer counts unshifted labels when it normalises the loss.

Padding must be on the right (or absent): the reversal is per sequence over its real tokens, so
the backward stream's first position is always the last real token, as the position-specific
mixing weights expect. These models cannot generate text left to right.
"""

import torch
import torch.nn.functional as F
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import LlamaConfig, LlamaModel
from transformers.loss.loss_utils import fixed_cross_entropy
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.llama.modeling_llama import LlamaPreTrainedModel

from ..masked_mixer.configuration import MaskedMixerConfig
from ..masked_mixer.modeling import MaskedMixerModel, MaskedMixerPreTrainedModel
from ..remote_code import SelfContained


@strict
class BidirectionalMixerConfig(MaskedMixerConfig):
    """Sizes of each of the two masked mixer streams (see MaskedMixerConfig)."""

    model_type = "bidirectional_mixer"


@strict
class BidirectionalLlamaConfig(LlamaConfig):
    """Sizes of each of the two Llama streams."""

    model_type = "bidirectional_llama"


def reverse_real_tokens(x: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence's real tokens along dim 1, leaving right padding in place.

    (batch, t, ...) -> (batch, t, ...); its own inverse. Raises if padding is not on the right.
    """
    t = x.shape[1]
    if attention_mask is None:
        return x.flip(1)
    positions = torch.arange(t, device=x.device)[None]  # (1, t)
    lengths = attention_mask.long().sum(1, keepdim=True)  # (b, 1)
    if not torch.equal(attention_mask.bool(), positions < lengths):
        raise ValueError("bidirectional models need right padding (attention_mask = ones then zeros)")
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)  # (b, t)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def combine_streams(forward: torch.Tensor, backward: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(b, t, d) streams in original order -> (b, t, d) with row n = F[n - 1] + B[n + 1] (zero past the ends)."""
    if attention_mask is not None:
        backward = backward * attention_mask[..., None].to(backward.dtype)  # B[len] must read as zero
    shifted_forward = F.pad(forward[:, :-1], (0, 0, 1, 0))  # row n <- F[n - 1]
    shifted_backward = F.pad(backward[:, 1:], (0, 0, 0, 1))  # row n <- B[n + 1]
    return shifted_forward + shifted_backward


def bidirectional_loss(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None, **kwargs) -> torch.Tensor:
    """Cross-entropy of logits[:, n] against labels[:, n] (no shift), -100 ignored."""
    return fixed_cross_entropy(logits.flatten(0, 1).float(), labels.flatten().to(logits.device), num_items_in_batch)


class BidirectionalLM:
    """The shared part of both models: run two causal trunks, combine, predict each token in place.

    Subclasses set `forward_stream`, `backward_stream` (trunks taking input_ids/attention_mask
    and returning `last_hidden_state`) and `lm_head`. The families declare `predicts_in_place`
    (family.py), which tells evaluation code not to shift: logits[:, n] predicts token n, and
    logits[:, n] compared with token n + 1 would be scored against a token that row has seen.
    """

    def get_input_embeddings(self) -> nn.Embedding:
        return self.forward_stream.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.forward_stream.embed_tokens = value

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs) -> MaskedLMOutput:
        ahead = self.forward_stream(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        reversed_ids = reverse_real_tokens(input_ids, attention_mask)
        behind = self.backward_stream(input_ids=reversed_ids, attention_mask=attention_mask, use_cache=False)
        # back to original order: behind[m] has seen tokens m..len-1
        behind = reverse_real_tokens(behind.last_hidden_state, attention_mask)
        logits = self.lm_head(combine_streams(ahead.last_hidden_state, behind, attention_mask))  # (b, t, vocab)
        loss = bidirectional_loss(logits, labels, kwargs.get("num_items_in_batch")) if labels is not None else None
        return MaskedLMOutput(loss=loss, logits=logits)


class BidirectionalMixerLM(BidirectionalLM, MaskedMixerPreTrainedModel):
    """Two masked mixer trunks (each with its own embedding) and one LM head."""

    config_class = BidirectionalMixerConfig
    config: BidirectionalMixerConfig
    base_model_prefix = "forward_stream"
    _tied_weights_keys = {"lm_head.weight": "forward_stream.embed_tokens.weight"}

    def __init__(self, config: BidirectionalMixerConfig):
        super().__init__(config)
        self.forward_stream = MaskedMixerModel(config)
        self.backward_stream = MaskedMixerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


class BidirectionalLlamaLM(BidirectionalLM, SelfContained, LlamaPreTrainedModel):
    """Two causal Llama trunks (the second reads the tokens reversed) and one LM head."""

    config_class = BidirectionalLlamaConfig
    config: BidirectionalLlamaConfig
    base_model_prefix = "forward_stream"
    _tied_weights_keys = {"lm_head.weight": "forward_stream.embed_tokens.weight"}

    def __init__(self, config: BidirectionalLlamaConfig):
        super().__init__(config)
        self.forward_stream = LlamaModel(config)
        self.backward_stream = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


__all__ = [
    "BidirectionalLlamaConfig",
    "BidirectionalLlamaLM",
    "BidirectionalMixerConfig",
    "BidirectionalMixerLM",
    "bidirectional_loss",
    "combine_streams",
    "reverse_real_tokens",
]
