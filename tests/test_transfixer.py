"""The transfixer: causality on every attention backend, reduces to Llama without mixing, save/load."""

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from masked_mixers.models import TransfixerConfig, TransfixerForCausalLM
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model

VOCAB, L = 40, 16
SIZES = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=L,
)


def make(attn: str = "sdpa") -> TransfixerForCausalLM:
    torch.manual_seed(0)
    return TransfixerForCausalLM(TransfixerConfig(**SIZES, attn_implementation=attn)).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_causal(attn):
    model = make(attn)
    ids = torch.randint(0, VOCAB, (2, 12))
    for j in (0, 5, 11):
        changed = ids.clone()
        changed[:, j] = (changed[:, j] + 1) % VOCAB
        with torch.no_grad():
            a, b = model(ids).logits, model(changed).logits
        torch.testing.assert_close(a[:, :j], b[:, :j], atol=0, rtol=0)
        assert (a[:, j] - b[:, j]).abs().amax() > 1e-4


def test_right_padding_leaves_real_positions_alone():
    model = make()
    ids = torch.randint(0, VOCAB, (1, 10))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 10), torch.zeros(1, 4)], dim=1).long()
    with torch.no_grad():
        torch.testing.assert_close(
            model(padded, attention_mask=mask).logits[:, :10], model(ids).logits, atol=1e-5, rtol=0
        )


def test_without_mixing_it_is_llama():
    """Zero every token mixing: what is left must be exactly transformers' Llama with the same weights."""
    model = make()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.token_mixing.weight.zero_()
            layer.token_mixing.bias.zero_()
    llama = LlamaForCausalLM(LlamaConfig(**SIZES)).eval()
    missing, unexpected = llama.load_state_dict(model.state_dict(), strict=False)
    assert not missing and all("token_mixing" in k for k in unexpected)
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, llama(ids).logits, atol=1e-5, rtol=0)


def test_mixing_changes_the_output():
    model = make()
    ids = torch.randint(0, VOCAB, (1, 8))
    with torch.no_grad():
        before = model(ids).logits
        model.model.layers[0].token_mixing.weight.mul_(2)
        assert (model(ids).logits - before).abs().amax() > 1e-4


def test_generate_recomputes_and_refuses_a_cache():
    model = make()
    ids = torch.randint(0, VOCAB, (2, 4))
    expected = ids
    with torch.no_grad():
        for _ in range(6):
            expected = torch.cat([expected, model(expected).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    got = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    assert torch.equal(got, expected)
    with pytest.raises(ValueError, match="use_cache=False"):
        model.generate(ids, max_new_tokens=2, do_sample=False, use_cache=True)


def test_save_load_round_trip(tmp_path):
    model = make()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is TransfixerForCausalLM
    ids = torch.randint(0, VOCAB, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_factory_family_and_loss():
    model, _ = build_model(
        ModelSpec(family="transfixer", hidden_size=16, num_heads=2, num_hidden_layers=1, seq_len=8), 30
    )
    assert isinstance(model, TransfixerForCausalLM)
    assert model.model.layers[0].token_mixing.weight.shape == (8, 8)
    ids = torch.randint(0, 30, (2, 8))
    assert torch.isfinite(model(ids, labels=ids).loss)


def test_trained_right_padded_it_places_a_left_padded_prompt_at_position_zero():
    """Like the masked mixer: a transfixer that records right-padded training skips leading pads
    (a batched pipeline pads left, yet each prompt reads as if alone); unrecorded, leading pads keep
    their positions as before (old run folders load unchanged)."""
    model = make()
    ids = torch.randint(1, VOCAB, (1, 6), generator=torch.Generator().manual_seed(3))
    padded = torch.cat([torch.zeros(1, 4, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 4), torch.ones(1, 6)], dim=1).long()
    with torch.no_grad():
        alone = model(ids).logits
        kept = model(padded, attention_mask=mask).logits[:, 4:]
        model.config.padding_side = "right"
        skipped = model(padded, attention_mask=mask).logits[:, 4:]
    torch.testing.assert_close(skipped, alone, atol=1e-5, rtol=0)
    assert (kept - alone).abs().amax() > 1e-4  # leading pads kept their positions: the text sat at 4..9


def test_padding_side_survives_save_and_load(tmp_path):
    model = make()
    model.config.padding_side = "right"
    model.save_pretrained(tmp_path)
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config.padding_side == "right"
    with pytest.raises(Exception, match="padding_side"):
        TransfixerConfig(**SIZES, padding_side="up")
