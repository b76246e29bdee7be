"""Linear mixers: collapse to one layer, cached generation past seq_len, causality, save/load, old configs, factory."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from masked_mixers.core.errors import UserError
from masked_mixers.models import LinearMixerConfig, LinearMixerForCausalLM
from masked_mixers.models.masked_mixer.cache import MaskedMixerCache
from masked_mixers.models.masked_mixer.modeling import MixerBlock
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model

VOCAB, L = 40, 20


def make(variant: str = "linear", layers: int = 4, seed: int = 0) -> LinearMixerForCausalLM:
    torch.manual_seed(seed)
    config = LinearMixerConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, seq_len=L, variant=variant, ff_mult=2
    )
    return LinearMixerForCausalLM(config).eval()


def greedy_without_cache(model, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Reference decoding: the whole prefix through the model for every new token."""
    for _ in range(new_tokens):
        logits = model(ids, use_cache=False).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


@pytest.mark.parametrize("variant", ["linear", "relu"])
@pytest.mark.parametrize("length", [L, 7])
def test_collapse_gives_the_same_logits(variant, length):
    deep = make(variant, layers=6)
    collapsed = deep.collapse()
    assert collapsed.config.num_hidden_layers == 1 and len(collapsed.model.layers) == 1
    ids = torch.randint(0, VOCAB, (3, length))
    with torch.no_grad():
        torch.testing.assert_close(collapsed(ids).logits, deep(ids).logits, atol=1e-4, rtol=0)


def test_collapsed_mixing_is_causal():
    collapsed = make(layers=5).collapse()
    weight = collapsed.model.layers[0].token_mixing.weight
    assert torch.count_nonzero(torch.triu(weight, diagonal=1)) == 0


def test_collapse_holds_on_real_positions_with_right_padding():
    deep = make(layers=4)
    collapsed = deep.collapse()
    ids = torch.randint(0, VOCAB, (2, 10))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    with torch.no_grad():
        a, b = deep(ids, attention_mask=mask).logits, collapsed(ids, attention_mask=mask).logits
    torch.testing.assert_close(a[0, :6], b[0, :6], atol=1e-4, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("variant", ["near_linear", "near_linear_ff"])
def test_near_linear_cannot_collapse(variant):
    with pytest.raises(ValueError, match="cannot be collapsed"):
        make(variant).collapse()


@pytest.mark.parametrize("variant", ["linear", "relu", "near_linear", "near_linear_ff"])
def test_cached_generate_equals_recomputing_the_prefix(variant):
    model = make(variant)
    ids = torch.randint(0, VOCAB, (2, 5))
    expected = greedy_without_cache(model, ids, 10)
    got = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False)
    assert torch.equal(got, expected)


def test_collapsed_generation_matches_deep_greedy_and_caches_one_layer():
    deep = make(layers=8)
    collapsed = deep.collapse()
    ids = torch.randint(0, VOCAB, (2, 4))
    expected = greedy_without_cache(deep, ids, 12)
    out = collapsed.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False, return_dict_in_generate=True
    )
    assert torch.equal(out.sequences, expected)
    # one cached tensor, the embeddings: each new token is one weighted sum over them
    assert isinstance(out.cache, MaskedMixerCache) and len(out.cache) == 1
    assert out.cache.get_seq_length() == expected.shape[1] - 1


@pytest.mark.parametrize("variant", ["linear", "near_linear"])
def test_generation_slides_past_seq_len_like_the_masked_mixer(variant):
    """The family declares slides_past_context: cached and recomputing generation agree past L."""
    model = make(variant)
    ids = torch.randint(0, VOCAB, (2, L - 2))
    kwargs = dict(attention_mask=torch.ones_like(ids), max_new_tokens=2 * L, do_sample=False, pad_token_id=0)
    cached = model.generate(ids, use_cache=True, **kwargs)
    assert cached.shape == (2, 3 * L - 2)
    assert torch.equal(cached, model.generate(ids, use_cache=False, **kwargs))


def test_it_is_a_masked_mixer_without_norms():
    for variant, feed_forward in (("linear", False), ("relu", False), ("near_linear", False), ("near_linear_ff", True)):
        model = make(variant, layers=2)
        assert all(type(layer) is MixerBlock for layer in model.model.layers)
        names = {name for name, _ in model.named_parameters()}
        assert any(n.startswith("model.layers.1.token_mixing.weight") for n in names)
        assert not any("norm" in n for n in names)
        assert ("model.layers.0.feed_forward.up.weight" in names) == feed_forward
        assert not model.config.use_layer_norm and model.config.use_feed_forward == feed_forward


def _trunk_parameters(model) -> dict[str, tuple]:
    return {n: tuple(p.shape) for n, p in model.named_parameters() if n.startswith("model.layers.")}


def test_linear_and_near_linear_have_exactly_the_reference_modules():
    """blbadger/maskedmixers mixer_lm/linear_mixer.py: blocks of x + W x (linear), x + conv-GELU-conv (nearly linear),
    W and the convs causal L x L over positions; no norm, no feature feed-forward."""
    linear, near = make("linear", layers=2), make("near_linear", layers=2)
    assert _trunk_parameters(linear) == {
        f"model.layers.{i}.token_mixing.{n}": s for i in (0, 1) for n, s in (("weight", (L, L)), ("bias", (L,)))
    }
    assert _trunk_parameters(near) == {
        f"model.layers.{i}.token_mixing.{n}": s
        for i in (0, 1)
        for n, s in (("weight_in", (L, L)), ("bias_in", (L,)), ("weight_out", (L, L)), ("bias_out", (L,)))
    }
    for model in (linear, near):
        for layer in model.model.layers:
            assert isinstance(layer.token_norm, torch.nn.Identity) and layer.feed_forward is None
            assert layer.use_residual and layer.dropout_p == 0
    # the nearly linear block computes x + tril(W2) GELU(tril(W1) x + b1) + b2 over positions, nothing else
    x = torch.randn(3, L, 16)
    mixing = near.model.layers[0].token_mixing
    hidden = torch.tril(mixing.weight_in) @ x + mixing.bias_in[:, None]  # (L, L) @ (b, L, d): over positions
    expected = x + torch.tril(mixing.weight_out) @ torch.nn.functional.gelu(hidden) + mixing.bias_out[:, None]
    with torch.no_grad():
        torch.testing.assert_close(near.model.layers[0](x), expected)


@pytest.mark.parametrize("variant", ["near_linear", "near_linear_ff"])
def test_config_saved_before_it_was_a_masked_mixer_config_loads_without_norms(tmp_path, variant):
    """An old config.json has no use_layer_norm / use_feed_forward keys: the variant decides them."""
    model = make(variant, layers=2)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    old = {
        k: v
        for k, v in saved.items()
        if k
        not in (
            "use_layer_norm",
            "use_residual",
            "use_feed_forward",
            "mixer_type",
            "dropout",
            "num_heads",
            "expansion",
            "layer_norm_eps",
        )
    }
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert not loaded.config.use_layer_norm
    assert (loaded.config.use_feed_forward, loaded.config.mixer_type) == (
        (True, "flat") if variant == "near_linear_ff" else (False, "expanded")
    )
    ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize("variant", ["linear", "relu", "near_linear", "near_linear_ff"])
def test_causal(variant):
    model = make(variant)
    ids = torch.randint(0, VOCAB, (2, 12))
    j = 7
    changed = ids.clone()
    changed[:, j] = (changed[:, j] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    torch.testing.assert_close(a[:, :j], b[:, :j], atol=0, rtol=0)
    assert (a[:, j:] - b[:, j:]).abs().amax() > 1e-3


@pytest.mark.parametrize("variant", ["linear", "relu", "near_linear", "near_linear_ff"])
def test_save_load_round_trip(tmp_path, variant):
    model = make(variant)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is LinearMixerForCausalLM and loaded.config.variant == variant
    ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_training_loss_and_gradients():
    model = make("near_linear").train()
    ids = torch.randint(0, VOCAB, (2, 10))
    out = model(ids, labels=ids)
    assert out.cache is None and torch.isfinite(out.loss)
    out.loss.backward()
    mixing = model.model.layers[0].token_mixing
    assert mixing.weight_in.grad.triu(1).abs().sum() == 0 and mixing.weight_out.grad.triu(1).abs().sum() == 0


def test_factory_family():
    model, _ = build_model(
        ModelSpec(family="linear_mixer", linear_variant="relu", hidden_size=8, num_hidden_layers=2, seq_len=8), 30
    )
    assert isinstance(model, LinearMixerForCausalLM) and model.config.variant == "relu"
    with pytest.raises(UserError, match="variant"):
        build_model(ModelSpec(family="linear_mixer", linear_variant="cubic"), 30)
