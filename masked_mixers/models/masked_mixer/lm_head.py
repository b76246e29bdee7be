"""The causal-LM head every language model of this package ends in, written once.

The masked mixer, the linear mixer, the transfixer and the ablated Llama all turn their trunk's
last hidden state into `CausalLMOutputWithPast` the same way; keeping that in one place keeps
`logits_to_keep`, the loss and the output fields alike across families, which the trainer,
evaluation and `generate()` rely on.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast


class CausalLMHeadMixin:
    """For a PreTrainedModel with an `lm_head` (nn.Linear d -> vocab).

    `head_activation`: an optional module applied before the head (the linear mixer's ReLU
    variant sets one; it has no parameters, so state dicts do not change).
    """

    head_activation: nn.Module | None = None
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def attach_trunk_and_head(self, trunk: nn.Module) -> None:
        """`self.model` = the trunk (embedding + blocks), `self.lm_head` = Linear(d, vocab) without bias;
        then post_init()."""
        self.model = trunk
        self.lm_head = nn.Linear(self.config.hidden_size, self.config.vocab_size, bias=False)
        self.post_init()

    def causal_lm_output(
        self,
        hidden: torch.Tensor,
        labels: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        cache=None,
        hidden_states: tuple | None = None,
        **loss_kwargs,
    ) -> CausalLMOutputWithPast:
        """Logits of the last `logits_to_keep` positions (0: all), and transformers' shifted LM loss.

        hidden: (b, t, d). `loss_kwargs` reach `self.loss_function` (e.g. `num_items_in_batch`,
        which the HF Trainer passes under gradient accumulation); labels of -100 are ignored.
        """
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]  # (b, k, d)
        if self.head_activation is not None:
            hidden = self.head_activation(hidden)
        logits = self.lm_head(hidden)  # (b, t or k, vocab)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config.vocab_size, **loss_kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=cache, hidden_states=hidden_states)


__all__ = ["CausalLMHeadMixin"]
