"""Padding in every generating family: no leak from future tokens, positions that follow the mask.

- the shared causal attention bias opens the diagonal, so a leading pad reads nothing after it;
- with left padding, a future real token changes no logit at any earlier column, pads included;
- greedy generation gives each prompt the same tokens batched (prompts of three lengths, padded
  on the side generation.py picks) as alone.
"""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from masked_mixers.generation import encode_prompts, generate_ids
from masked_mixers.models import (
    AblatedLlamaConfig,
    AblatedLlamaForCausalLM,
    AutoencodingTransformer,
    AutoencodingTransformerConfig,
    LinearMixerConfig,
    LinearMixerForCausalLM,
    TransfixerConfig,
    TransfixerForCausalLM,
)
from masked_mixers.models.attention_mask import causal_attention_bias

PROMPTS = ["once upon a time there was", "the dog", "lily and tom went to the park to play with a ball"]
WORDS = sorted({w for p in PROMPTS for w in p.split()} | {f"w{i}" for i in range(40)})
LLAMA_SIZES = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(["<pad>", "<eos>", "<unk>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


def _model(family: str, vocab: int, seq_len: int, attn: str = "sdpa"):
    torch.manual_seed(0)
    if family == "transfixer":
        config = TransfixerConfig(
            vocab_size=vocab, max_position_embeddings=seq_len, attn_implementation=attn, **LLAMA_SIZES
        )
        return TransfixerForCausalLM(config).eval()
    if family == "llama_ablated":
        config = AblatedLlamaConfig(
            vocab_size=vocab, max_position_embeddings=seq_len, attn_implementation=attn, **LLAMA_SIZES
        )
        return AblatedLlamaForCausalLM(config).eval()
    config = LinearMixerConfig(
        vocab_size=vocab, hidden_size=16, num_hidden_layers=3, seq_len=seq_len, variant="near_linear", ff_mult=2
    )
    return LinearMixerForCausalLM(config).eval()


def test_bias_opens_the_diagonal_and_nothing_after_it():
    mask = torch.tensor([[0, 0, 1, 1, 0]])
    allowed = causal_attention_bias(mask, 5, torch.float32)[0, 0] == 0  # (query, key)
    expected = torch.tensor(
        [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(allowed, expected)
    assert torch.equal(causal_attention_bias(None, 3, torch.float32)[0, 0] == 0, torch.ones(3, 3).tril().bool())


def _left_padded(vocab: int, t: int = 12, pads=(4, 0, 7)) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(3, vocab, (len(pads), t), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    for row, n in enumerate(pads):
        mask[row, :n] = 0
        ids[row, :n] = 0
    return ids, mask


@pytest.mark.parametrize(
    "family,attn",
    [("transfixer", "sdpa"), ("transfixer", "eager"), ("llama_ablated", "sdpa"), ("llama_ablated", "eager")],
)
def test_left_padding_leaks_no_future_token(family, attn):
    model = _model(family, vocab=40, seq_len=16, attn=attn)
    ids, mask = _left_padded(40)
    with torch.no_grad():
        base = model(ids, attention_mask=mask).logits
        for j in range(8, 12):  # a real token in every row
            changed = ids.clone()
            changed[:, j] = 3 + (changed[:, j] - 2) % 37
            logits = model(changed, attention_mask=mask).logits
            assert torch.equal(logits[:, :j], base[:, :j]), f"token {j} reached an earlier column"
            assert not torch.equal(logits[:, j], base[:, j])


def test_llama_autoencoder_encoder_leaks_no_future_token_with_left_padding():
    torch.manual_seed(0)
    config = AutoencodingTransformerConfig(
        vocab_size=40, max_position_embeddings=16, encoder_layers=2, decoder_layers=1, **LLAMA_SIZES
    )
    model = AutoencodingTransformer(config).eval()
    ids, mask = _left_padded(40)
    with torch.no_grad():
        base = model.encoder_states(model.embed_tokens(ids), mask)
        changed = ids.clone()
        changed[:, 9] = 3 + (changed[:, 9] - 2) % 37
        states = model.encoder_states(model.embed_tokens(changed), mask)
    assert torch.equal(states[:, :9], base[:, :9])


def test_ablated_llama_positions_ignore_left_padding():
    model = _model("llama_ablated", vocab=40, seq_len=16)
    ids, mask = _left_padded(40, pads=(5,))
    seen = []
    model.model.rotary_emb.register_forward_hook(
        lambda module, args, kwargs, out: seen.append(kwargs["position_ids"]), with_kwargs=True
    )
    with torch.no_grad():
        padded = model(ids, attention_mask=mask).logits[:, 5:]
    assert seen[0].tolist() == [[0] * 6 + list(range(1, 7))]  # pads at 0, the text at 0..6 as alone
    with torch.no_grad():
        alone = model(ids[:, 5:]).logits
        explicit = model(ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, 5:]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    assert torch.equal(explicit, padded)


def test_transfixer_positions_follow_the_mask():
    """Right pads take no position: tokens after a gap continue where the real tokens stopped."""
    model = _model("transfixer", vocab=40, seq_len=16)
    ids = torch.randint(3, 40, (1, 8), generator=torch.Generator().manual_seed(2))
    gapped = torch.cat([ids[:, :5], torch.zeros(1, 3, dtype=torch.long), ids[:, 5:]], 1)
    mask = torch.tensor([[1] * 5 + [0] * 3 + [1] * 3])
    with torch.no_grad():
        alone = model(ids).logits
        got = model(gapped, attention_mask=mask).logits
    torch.testing.assert_close(got[:, mask[0].bool()], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        got[:, 5:8], alone[:, 4:5].expand(-1, 3, -1), atol=1e-5, rtol=0
    )  # pads report the last real token


CASES = [
    ("transfixer", "left"),
    ("transfixer", "right"),
    ("linear_mixer", "left"),
    ("linear_mixer", "right"),
    ("llama_ablated", "left"),
]


@pytest.mark.parametrize("family,side", CASES)
def test_batched_greedy_generation_equals_one_by_one(tokenizer, family, side):
    # linear_mixer, right: past seq_len, through the sliding window
    seq_len = 20 if (family, side) == ("linear_mixer", "right") else 32
    model = _model(family, vocab=len(tokenizer), seq_len=seq_len)
    tokenizer.padding_side = side
    kwargs = dict(max_new_tokens=12, greedy=True, use_cache=family == "linear_mixer")
    inputs = encode_prompts(model, tokenizer, PROMPTS, kwargs["max_new_tokens"])
    assert (inputs["attention_mask"][:, 0 if side == "left" else -1] == 0).any()  # padded on that side
    batched = generate_ids(model, tokenizer, PROMPTS, **kwargs)
    for row, prompt in enumerate(PROMPTS):
        alone = generate_ids(model, tokenizer, [prompt], **kwargs)[0].tolist()
        assert batched[row].tolist()[: len(alone)] == alone, prompt
