"""Correctness of the masked mixer model: causality, exact masking under AdamW, save/load, limits.

Every test runs for each mixer variant and for random small configs (ablation switches included),
so a mistake in one variant's mask or one switch's wiring shows up.
"""

import random

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM
from masked_mixers.models.masked_mixer.mixing import (
    ExpandedTokenMixing,
    FlatTokenMixing,
    MultiHeadTokenMixing,
    causal_mask,
)

VOCAB = 37


def _config(mixer_type="flat", **overrides) -> MaskedMixerConfig:
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        seq_len=9,
        mixer_type=mixer_type,
        num_heads=4,
        expansion=2,
    )
    fields.update(overrides)
    return MaskedMixerConfig(**fields)


def _random_config(seed: int) -> MaskedMixerConfig:
    rng = random.Random(seed)
    heads = rng.choice([1, 2, 4])
    return _config(
        mixer_type=rng.choice(["flat", "expanded", "multihead"]),
        hidden_size=heads * rng.choice([2, 3, 4]),
        num_hidden_layers=rng.randint(1, 3),
        seq_len=rng.randint(4, 11),
        num_heads=heads,
        expansion=rng.randint(1, 3),
        ff_mult=rng.randint(1, 3),
        use_layer_norm=rng.random() < 0.5,
        use_residual=rng.random() < 0.5,
        use_feed_forward=rng.random() < 0.5,
        tie_word_embeddings=rng.random() < 0.5,
    )


CONFIGS = [_config(t) for t in ("flat", "expanded", "multihead")]
CONFIGS += [
    _config(t, use_layer_norm=False, use_residual=False, use_feed_forward=False)
    for t in ("flat", "expanded", "multihead")
]
CONFIGS += [_random_config(seed) for seed in range(6)]
IDS = [
    f"{c.mixer_type}-ln{int(c.use_layer_norm)}res{int(c.use_residual)}ff{int(c.use_feed_forward)}-L{c.seq_len}"
    for c in CONFIGS
]


def _model(config: MaskedMixerConfig, seed: int = 0) -> MaskedMixerForCausalLM:
    torch.manual_seed(seed)
    return MaskedMixerForCausalLM(config).eval()


def _train(model: MaskedMixerForCausalLM, steps: int = 4) -> torch.optim.AdamW:
    """A few AdamW steps (with weight decay) on random tokens, so every weight has moved."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (3, model.config.seq_len), generator=generator)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return optimizer


def _assert_causal(model: MaskedMixerForCausalLM) -> None:
    """Changing token j leaves logits < j bit-identical and changes some logits at >= j."""
    length = model.config.seq_len
    ids = torch.randint(0, VOCAB, (2, length), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        base = model(ids).logits
        for j in range(length):
            changed = ids.clone()
            changed[:, j] = (changed[:, j] + 1) % VOCAB
            logits = model(changed).logits
            assert torch.equal(logits[:, :j], base[:, :j]), f"position {j} leaked into earlier logits"
            assert not torch.equal(logits[:, j:], base[:, j:]), f"position {j} changed nothing"


def _masked_entries(model: MaskedMixerForCausalLM) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(parameter, boolean mask of the entries that must stay zero) for every mixing matrix."""
    out = []
    for module in model.modules():
        if isinstance(module, (FlatTokenMixing, MultiHeadTokenMixing)):
            out.append((module.weight, ~causal_mask(module.seq_len, module.seq_len)))
        elif isinstance(module, ExpandedTokenMixing):
            mask_in, mask_out = module._masks(module.seq_len, "cpu")
            out += [(module.weight_in, ~mask_in), (module.weight_out, ~mask_out)]
    assert out, "no token-mixing layer found"
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_causal_before_and_after_training(config):
    model = _model(config)
    _assert_causal(model)
    _train(model)
    _assert_causal(model)


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_masked_entries_stay_exactly_zero_under_adamw(config):
    model = _model(config)
    optimizer = _train(model)
    for param, forbidden in _masked_entries(model):
        assert forbidden.any()
        state = optimizer.state[param]
        for name, tensor in (
            ("weight", param.detach()),
            ("grad", param.grad),
            ("exp_avg", state["exp_avg"]),
            ("exp_avg_sq", state["exp_avg_sq"]),
        ):
            assert torch.count_nonzero(tensor[..., forbidden]) == 0, f"{name} has non-zero masked entries"
        assert torch.count_nonzero(param.detach()[..., ~forbidden]) > 0


@pytest.mark.parametrize("tie", [False, True])
@pytest.mark.parametrize("mixer_type", ["flat", "expanded", "multihead"])
def test_save_load_round_trip_gives_identical_logits(tmp_path, mixer_type, tie):
    model = _model(_config(mixer_type, tie_word_embeddings=tie))
    _train(model, steps=2)
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "masked_mixer"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is MaskedMixerForCausalLM
    ids = torch.randint(0, VOCAB, (3, model.config.seq_len))
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0  # a right-padded row takes the attention-mask path
    with torch.no_grad():
        for kwargs in ({}, {"attention_mask": mask}):
            assert torch.equal(loaded(ids, **kwargs).logits, model(ids, **kwargs).logits)
    if tie:
        assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    else:
        assert not torch.equal(loaded.lm_head.weight, loaded.model.embed_tokens.weight)


@pytest.mark.parametrize("mixer_type", ["flat", "expanded", "multihead"])
def test_input_longer_than_seq_len_is_a_clear_error(mixer_type):
    model = _model(_config(mixer_type))
    ids = torch.zeros(1, model.config.seq_len + 1, dtype=torch.long)
    with pytest.raises(ValueError, match=r"10 .*seq_len=9"):
        model(ids)
    with pytest.raises(ValueError, match=r"10 positions .*seq_len=9"):
        model(ids, attention_mask=torch.ones_like(ids))


@pytest.mark.parametrize("mixer_type", ["flat", "expanded", "multihead"])
def test_padding_semantics(mixer_type):
    """Right pads take no position (and report the last real token); left pads keep theirs."""
    model = _model(_config(mixer_type))
    _train(model, steps=2)
    ids = torch.randint(1, VOCAB, (1, 6))
    with torch.no_grad():
        alone = model(ids).logits
        right = model(
            torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1), attention_mask=torch.tensor([[1] * 6 + [0] * 3])
        ).logits
        torch.testing.assert_close(right[:, :6], alone, atol=1e-6, rtol=0)
        torch.testing.assert_close(right[:, 6:], alone[:, -1:].expand(-1, 3, -1), atol=1e-6, rtol=0)
        # left padding: the text sits at positions 3..8, as a model trained on left-padded examples saw it
        left_ids = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
        left = model(left_ids, attention_mask=torch.tensor([[0] * 3 + [1] * 6])).logits[:, 3:]
        assert not torch.allclose(left, alone, atol=1e-4)
        # pads are zeroed before mixing, so whatever token they hold changes nothing
        other = model(
            left_ids.clone().fill_(5).index_copy(1, torch.arange(3, 9), ids),
            attention_mask=torch.tensor([[0] * 3 + [1] * 6]),
        ).logits[:, 3:]
        torch.testing.assert_close(other, left, atol=1e-6, rtol=0)
