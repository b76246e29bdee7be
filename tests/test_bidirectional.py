"""Bidirectional LMs: no position sees its own target at any depth, both sides are used, no leak."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from masked_mixers.models import (
    BidirectionalLlamaConfig,
    BidirectionalLlamaLM,
    BidirectionalMixerConfig,
    BidirectionalMixerLM,
    family_of,
)
from masked_mixers.models.bidirectional import combine_streams, reverse_real_tokens
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model

VOCAB, L, T = 40, 12, 7


def make(kind: str, layers: int = 2):
    torch.manual_seed(layers)
    if kind == "mixer":
        return BidirectionalMixerLM(
            BidirectionalMixerConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=layers, seq_len=L)
        ).eval()
    config = BidirectionalLlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=L,
    )
    return BidirectionalLlamaLM(config).eval()


def changes_per_row(logits_fn, ids: torch.Tensor, n: int) -> torch.Tensor:
    """(t,) largest change of each logit row when token n is replaced."""
    changed = ids.clone()
    changed[:, n] = (changed[:, n] + 1) % VOCAB
    with torch.no_grad():
        return (logits_fn(ids) - logits_fn(changed)).abs().amax(dim=(0, 2))


@pytest.mark.parametrize("kind", ["mixer", "llama"])
@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_no_position_sees_its_own_target_but_sees_both_sides(kind, layers):
    model = make(kind, layers)
    ids = torch.randint(0, VOCAB, (2, T))
    for n in range(T):
        change = changes_per_row(lambda x: model(x).logits, ids, n)
        assert change[n] == 0, f"row {n} depends on its own target token"
        others = [m for m in (n - 1, n + 1) if 0 <= m < T]  # the rows whose context holds token n
        assert all(change[m] > 1e-5 for m in others)


def leaky_mixer_logits(model: BidirectionalMixerLM, ids: torch.Tensor) -> torch.Tensor:
    """The wrong design: exchange the streams after every block instead of only after the last.

    After each block the forward stream takes in the (shifted) backward stream and vice versa,
    with the same shifts as the final combination, so each single exchange looks harmless.
    """
    ahead = model.forward_stream.embed_tokens(ids)
    behind = model.backward_stream.embed_tokens(ids.flip(1)).flip(1)
    for f_block, b_block in zip(model.forward_stream.layers, model.backward_stream.layers):
        ahead, behind = f_block(ahead), b_block(behind.flip(1)).flip(1)
        ahead, behind = ahead + F.pad(behind[:, 2:], (0, 0, 0, 2)), behind + F.pad(ahead[:, :-2], (0, 0, 2, 0))
    return model.lm_head(combine_streams(ahead, behind, None))


def test_reference_streams_match_the_model_and_exchanging_them_inside_blocks_leaks():
    model = make("mixer", layers=2)
    ids = torch.randint(0, VOCAB, (2, T))
    with torch.no_grad():  # without the exchange, the hand-written streams are the model itself
        ahead = model.forward_stream(ids).last_hidden_state
        behind = model.backward_stream(ids.flip(1)).last_hidden_state.flip(1)
        torch.testing.assert_close(model.lm_head(combine_streams(ahead, behind, None)), model(ids).logits)
    n = 3
    assert changes_per_row(lambda x: model(x).logits, ids, n)[n] == 0
    assert changes_per_row(lambda x: leaky_mixer_logits(model, x), ids, n)[n] > 1e-4  # leaks within two layers


@pytest.mark.parametrize("kind", ["mixer", "llama"])
def test_right_padding_gives_the_unpadded_logits(kind):
    model = make(kind)
    short = torch.randint(0, VOCAB, (1, 5))
    full = torch.randint(0, VOCAB, (1, T))
    batch = torch.cat([torch.cat([short, torch.zeros(1, T - 5, dtype=torch.long)], dim=1), full])
    mask = torch.ones_like(batch)
    mask[0, 5:] = 0
    with torch.no_grad():
        logits = model(batch, attention_mask=mask).logits
        torch.testing.assert_close(logits[0, :5], model(short).logits[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(logits[1], model(full).logits[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="right padding"):
        model(batch, attention_mask=mask.flip(1))


def test_reverse_real_tokens_is_its_own_inverse():
    x = torch.arange(12).view(2, 6)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    assert reverse_real_tokens(x, mask).tolist() == [[3, 2, 1, 0, 4, 5], [11, 10, 9, 8, 7, 6]]
    assert torch.equal(reverse_real_tokens(reverse_real_tokens(x, mask), mask), x)


def test_loss_predicts_each_token_in_place():
    model = make("mixer")
    ids = torch.randint(0, VOCAB, (2, T))
    labels = ids.clone()
    labels[0, -2:] = -100
    out = model(ids, labels=labels)
    expected = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(out.loss, expected)
    assert (
        model.loss_type is None and family_of(model).capabilities.predicts_in_place
    )  # Trainer and evaluation must not shift labels


@pytest.mark.parametrize("kind", ["mixer", "llama"])
def test_save_load_round_trip(tmp_path, kind):
    model = make(kind)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    ids = torch.randint(0, VOCAB, (2, T))
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=0, rtol=0)


@pytest.mark.parametrize(
    "family, cls", [("bidirectional_mixer", BidirectionalMixerLM), ("bidirectional_llama", BidirectionalLlamaLM)]
)
def test_factory_families(family, cls):
    model, _ = build_model(ModelSpec(family=family, hidden_size=16, num_heads=2, num_hidden_layers=1, seq_len=8), 30)
    assert isinstance(model, cls)
    ids = torch.randint(0, 30, (2, 8))
    assert torch.isfinite(model(ids, labels=ids).loss)


@pytest.mark.parametrize("kind", ["mixer", "llama"])
def test_evaluation_scores_in_place_not_shifted(kind):
    """evaluate_model must score a bidirectional model on its own (unshifted) targets."""
    from datasets import Dataset

    from masked_mixers.training.evaluation import evaluate_model

    model = make(kind).eval()
    ids = torch.randint(0, model.config.vocab_size, (4, 12))
    dataset = Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(), "labels": ids.tolist()}
    )
    with torch.no_grad():
        own = model(input_ids=ids, labels=ids).loss.item()
    assert evaluate_model(model, dataset, batch_size=4, progress=False)["loss"] == pytest.approx(own, rel=1e-5)
