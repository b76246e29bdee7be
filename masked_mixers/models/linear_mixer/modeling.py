"""Linear and near-linear masked mixers, and the collapse of a deep linear mixer into one layer.

These are masked mixers (`MixerBlock`s, `MaskedMixerModel`'s trunk, its cache and sliding
window) with the switches `LinearMixerConfig.variant` sets: no norms, no feature feed-forward
(but in the "near_linear_ff" variant), flat mixing for "linear" and "relu", and for the reference's
nearly linear model ("near_linear") the expanded mixing with expansion 1, i.e. per block

    x <- x + W2 GELU(W1 x + b1) + b2,   W1, W2 causal-masked L x L mixings over positions.

What is theirs is the ReLU before the head ("relu") and `collapse()`.

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

from ..masked_mixer.modeling import MaskedMixerForCausalLM, MaskedMixerModel, MaskedMixerPreTrainedModel
from .configuration import LinearMixerConfig


class LinearMixerPreTrainedModel(MaskedMixerPreTrainedModel):
    """Same initialisation as the masked mixer (PyTorch defaults, masked entries zero)."""

    config_class = LinearMixerConfig
    config: LinearMixerConfig


class LinearMixerModel(LinearMixerPreTrainedModel, MaskedMixerModel):
    """Embedding and masked mixer blocks without norms (`model.layers.i.token_mixing`), no head."""


class LinearMixerForCausalLM(LinearMixerPreTrainedModel, MaskedMixerForCausalLM):
    """Linear mixer with an LM head (a ReLU before it for variant "relu"); labels are shifted inside.

    Generation is the masked mixer's: `MaskedMixerCache`, and a sliding window past seq_len.
    """

    trunk_class = LinearMixerModel

    def __init__(self, config: LinearMixerConfig):
        super().__init__(config)
        if config.variant == "relu":
            self.head_activation = nn.ReLU()  # no parameters: the state dict is the other variants'

    @torch.no_grad()
    def collapse(self) -> "LinearMixerForCausalLM":
        """An equivalent one-layer model: mixing P - I and bias c (see the module docstring).

        The product is accumulated in float64 and cast back, so the collapsed logits match the
        deep ones to rounding. Only the "linear" and "relu" variants have a linear trunk.
        """
        if self.config.variant not in ("linear", "relu"):
            raise ValueError(
                f"a {self.config.variant} mixer has a GELU in every block and cannot be collapsed (only linear, relu)"
            )
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


__all__ = ["LinearMixerForCausalLM", "LinearMixerModel", "LinearMixerPreTrainedModel"]
