"""The blocked lower-triangular token mixing equals the dense masked product, in values and gradients."""

import pytest
import torch

from masked_mixers.models.masked_mixer import MaskedMixerConfig
from masked_mixers.models.masked_mixer.triangular import (
    lower_triangular_matmul,
    set_triangular_tile,
    triangular_flop_fraction,
)
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model


@pytest.mark.parametrize("t, tile", [(1, 4), (7, 3), (13, 4), (16, 4), (33, 8), (40, 64)])
def test_blocked_product_equals_dense_with_gradients(t, tile):
    torch.manual_seed(t)
    weight = torch.randn(t, t, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, t, 5, dtype=torch.float64, requires_grad=True)
    dense = torch.matmul(torch.tril(weight), x)
    blocked = lower_triangular_matmul(torch.tril(weight), x, tile)
    torch.testing.assert_close(blocked, dense)
    g = torch.randn_like(dense)
    dense_grads = torch.autograd.grad(dense, (weight, x), g)
    blocked_grads = torch.autograd.grad(blocked, (weight, x), g)
    for a, b in zip(blocked_grads, dense_grads):
        torch.testing.assert_close(a, b)
    assert torch.count_nonzero(torch.triu(blocked_grads[0], diagonal=1)) == 0  # the masked triangle gets no gradient


def test_blocked_product_broadcasts_heads():
    w = torch.tril(torch.randn(4, 11, 11, dtype=torch.float64))  # (h, t, t)
    v = torch.randn(2, 4, 11, 3, dtype=torch.float64)  # (b, h, t, d/h)
    torch.testing.assert_close(lower_triangular_matmul(w, v, 4), torch.matmul(w, v))


def test_flop_fraction_tends_to_half():
    assert triangular_flop_fraction(512, 512) == 1.0
    assert triangular_flop_fraction(512, 0) == 1.0
    assert abs(triangular_flop_fraction(512, 64) - (1 + 64 / 512) / 2) < 1e-9
    assert triangular_flop_fraction(10, 3) == (3 * 3 + 6 * 3 + 9 * 3 + 10 * 1) / 100


@pytest.mark.parametrize("mixer_type", ["flat", "multihead"])
def test_model_with_triangular_tiles_matches_dense(mixer_type):
    torch.manual_seed(0)
    spec = ModelSpec(
        family="mixer", mixer_type=mixer_type, hidden_size=16, num_hidden_layers=2, seq_len=24, num_heads=2
    )
    model, _ = build_model(spec, 50)
    model.double()
    ids = torch.randint(0, 50, (2, 19))  # 19: not a multiple of the tile
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding goes through the slot path too

    def loss_and_grads():
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        out.loss.backward()
        return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    dense_logits, dense_grads = loss_and_grads()
    assert set_triangular_tile(model, 5) == 2
    assert model.config.triangular_tile == 5
    tri_logits, tri_grads = loss_and_grads()
    torch.testing.assert_close(tri_logits, dense_logits)
    assert dense_grads.keys() == tri_grads.keys()
    for name in dense_grads:
        torch.testing.assert_close(tri_grads[name], dense_grads[name], msg=name)


def test_config_refuses_negative_tile_and_round_trips(tmp_path):
    with pytest.raises(Exception, match="triangular_tile must be >= 0"):
        MaskedMixerConfig(triangular_tile=-1)
    config = MaskedMixerConfig(triangular_tile=64)
    config.save_pretrained(tmp_path)
    assert MaskedMixerConfig.from_pretrained(tmp_path).triangular_tile == 64
