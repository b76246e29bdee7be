"""Cached generation of masked mixers: parity with full forwards, generate() integration, batching, CLI.

Models are tiny and random (seq_len 8-12) so that generation crosses the sliding window's
re-prime several times within a few dozen tokens.
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import SHARED
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM
from masked_mixers.bench.generate import CONTENDERS
from masked_mixers.cli import main
from masked_mixers.generation import encode_prompts, full_window_generate, generate_ids, generate_text

DATA = SHARED
VARIANTS = ["flat", "expanded", "multihead"]
PROMPTS = ["once upon a time", "the dog", "lily and tom went to the park to play"]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A small byte-level BPE trained on real TinyStories text."""
    lines = (DATA / "tinystories" / "valid-lowercase.jsonl").read_text(encoding="utf-8").splitlines()[:200]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = __import__("tokenizers").decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator((json.loads(line)["text"] for line in lines), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", bos_token="<eos>")


def _mixer(mixer_type: str, vocab: int = 300, seq_len: int = 12, seed: int = 0) -> MaskedMixerForCausalLM:
    torch.manual_seed(seed)
    config = MaskedMixerConfig(
        vocab_size=vocab,
        hidden_size=16,
        num_hidden_layers=2,
        seq_len=seq_len,
        mixer_type=mixer_type,
        num_heads=4,
        expansion=2,
    )
    return MaskedMixerForCausalLM(config).eval()


def _expected_window(n: int, seq_len: int) -> int:
    """The documented rule, simulated: a full window keeps its last L // 2 tokens before the next one."""
    window = 0
    for _ in range(n):
        window = (seq_len // 2 if window == seq_len else window) + 1
    return window


@pytest.mark.parametrize("mixer_type", VARIANTS)
def test_cached_logits_equal_full_forward_at_every_step(mixer_type):
    seq_len = 8
    model = _mixer(mixer_type, vocab=50, seq_len=seq_len)
    ids = torch.randint(0, 50, (2, 30), generator=torch.Generator().manual_seed(0))
    prompt = 5
    with torch.no_grad():
        out = model(ids[:, :prompt], use_cache=True)
        torch.testing.assert_close(out.logits, model(ids[:, :prompt]).logits, atol=1e-5, rtol=0)
        cache, reprimes = out.cache, 0
        for n in range(prompt + 1, ids.shape[1] + 1):
            step = model(ids[:, n - 1 : n], cache=cache).logits[:, -1]
            window = _expected_window(n, seq_len)
            reprimes += window == seq_len // 2 + 1
            full = model(ids[:, n - window : n]).logits[:, -1]  # a plain forward over the same window
            torch.testing.assert_close(step, full, atol=1e-5, rtol=0, msg=f"step {n}")
    assert reprimes >= 3


@pytest.mark.parametrize("switch", ["use_layer_norm", "use_residual", "use_feed_forward", "dropout"])
def test_cached_decoding_follows_the_ablation_switches(switch):
    """The cached path runs the same block code with a cache: check it honours every switch."""
    torch.manual_seed(0)
    value = 0.5 if switch == "dropout" else False
    config = MaskedMixerConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, seq_len=8, **{switch: value})
    model = MaskedMixerForCausalLM(config).eval()
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cache = model(ids[:, :3], use_cache=True).cache
        steps = [model(ids[:, n : n + 1], cache=cache).logits[:, -1] for n in range(3, 8)]
        torch.testing.assert_close(torch.stack(steps, 1), model(ids).logits[:, 3:], atol=1e-5, rtol=0)


def test_cached_steps_enter_every_block_through_its_hooks():
    """accelerate places blocks on devices with hooks: cached decoding must still call each block."""
    model = _mixer("flat", vocab=50, seq_len=8)
    calls = []
    for layer in model.model.layers:
        layer.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[1]))
    model.generate(torch.randint(1, 50, (1, 3)), max_new_tokens=4, do_sample=False, pad_token_id=0)
    assert calls == [3, 3] + [1, 1] * 3  # the prompt, then one token per step, in both blocks


@pytest.mark.parametrize("mixer_type", VARIANTS)
def test_prompt_longer_than_seq_len_is_windowed_the_same_way(mixer_type):
    model = _mixer(mixer_type, vocab=50, seq_len=8)
    ids = torch.randint(0, 50, (1, 19))
    with torch.no_grad():
        cached = model(ids, use_cache=True).logits[:, -1]
        uncached = model(ids, sliding_window=True).logits[:, -1]
        window = _expected_window(19, 8)
        torch.testing.assert_close(cached, model(ids[:, -window:]).logits[:, -1], atol=1e-5, rtol=0)
        torch.testing.assert_close(uncached, model(ids[:, -window:]).logits[:, -1], atol=1e-5, rtol=0)


@pytest.mark.parametrize("mixer_type", VARIANTS)
def test_greedy_generate_with_and_without_cache_is_identical(mixer_type):
    model = _mixer(mixer_type, vocab=50, seq_len=8)
    ids = torch.randint(1, 50, (3, 4))
    kwargs = dict(max_new_tokens=25, do_sample=False, pad_token_id=0)
    cached = model.generate(ids, use_cache=True, **kwargs)
    assert cached.shape == (3, 29)
    assert torch.equal(cached, model.generate(ids, use_cache=False, **kwargs))


def test_paper_style_full_window_decoding_matches_the_cache():
    """The paper's decoding (bench generate's (b)): the whole model over a right-padded L-token window per token,
    same greedy tokens."""
    model = _mixer("flat", vocab=50, seq_len=16)
    ids = torch.randint(1, 50, (3, 5))
    cached = model.generate(ids, use_cache=True, max_new_tokens=11, do_sample=False, pad_token_id=0)
    assert torch.equal(full_window_generate(model, ids, 11), cached)


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("mixer_type", VARIANTS)
def test_batched_generation_equals_one_by_one(tokenizer, mixer_type, side):
    # left: prompts are padded to seq_len - max_new_tokens (>= the longest); right: run past seq_len too
    model = _mixer(mixer_type, vocab=len(tokenizer), seq_len=40 if side == "left" else 24)
    tokenizer.padding_side = side
    kwargs = dict(max_new_tokens=10 if side == "left" else 30, greedy=True)
    inputs = encode_prompts(model, tokenizer, PROMPTS, kwargs["max_new_tokens"])
    assert (inputs["attention_mask"][:, 0 if side == "left" else -1] == 0).any()  # padded on that side
    batched = generate_ids(model, tokenizer, PROMPTS, **kwargs)
    for row, prompt in enumerate(PROMPTS):
        alone = generate_ids(model, tokenizer, [prompt], **kwargs)[0].tolist()
        assert batched[row].tolist()[: len(alone)] == alone, prompt  # a batch pads after EOS


def test_generate_feeds_one_new_token_per_step_with_the_cache(tokenizer):
    model = _mixer("flat", vocab=len(tokenizer))
    seen = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    tokenizer.padding_side = "right"
    generate_ids(model, tokenizer, PROMPTS[:2], max_new_tokens=20, greedy=True)
    width = encode_prompts(model, tokenizer, PROMPTS[:2], 20)["input_ids"].shape[1]
    assert seen[0] == (2, width) and seen[1:] == [(2, 1)] * 19
    seen.clear()
    generate_ids(model, tokenizer, PROMPTS[:2], max_new_tokens=5, greedy=True, use_cache=False)
    assert [s[1] for s in seen] == [width + i for i in range(5)]


def test_sampling_is_seeded_and_filters_apply(tokenizer):
    model = _mixer("multihead", vocab=len(tokenizer))
    tokenizer.padding_side = "right"
    sample = dict(max_new_tokens=15, temperature=1.5, top_p=0.95, repetition_penalty=1.2)
    first = generate_ids(model, tokenizer, PROMPTS, seed=3, **sample)
    assert torch.equal(first, generate_ids(model, tokenizer, PROMPTS, seed=3, **sample))
    assert not torch.equal(first, generate_ids(model, tokenizer, PROMPTS, seed=4, **sample))
    # top-k 1 keeps only the argmax: sampling with it is greedy decoding
    greedy = generate_ids(model, tokenizer, PROMPTS, max_new_tokens=10, greedy=True)
    assert torch.equal(generate_ids(model, tokenizer, PROMPTS, max_new_tokens=10, top_k=1, seed=0), greedy)


def test_generation_stops_at_eos(tokenizer):
    model = _mixer("expanded", vocab=len(tokenizer))
    tokenizer.padding_side = "right"
    greedy = generate_ids(model, tokenizer, PROMPTS[:1], max_new_tokens=10, greedy=True)[0].tolist()
    stop = greedy[3]
    eos = tokenizer.convert_ids_to_tokens(stop)
    original = tokenizer.eos_token
    tokenizer.eos_token = eos
    try:
        stopped = generate_ids(model, tokenizer, PROMPTS[:1], max_new_tokens=10, greedy=True)[0].tolist()
        text = generate_text(model, tokenizer, PROMPTS[:1], max_new_tokens=10, greedy=True)[0]
    finally:
        tokenizer.eos_token = original
    assert stopped == greedy[: greedy.index(stop) + 1]
    assert text == tokenizer.decode(greedy[: greedy.index(stop)], skip_special_tokens=True)


def _save(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("family", ["mixer", "llama"])
def test_cli_generate_streams_text(tokenizer, tmp_path, capsys, family):
    if family == "mixer":
        model = _mixer("flat", vocab=len(tokenizer))
    else:
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
        )
        model = LlamaForCausalLM(config).eval()
    tokenizer.padding_side = "right"
    model_dir = _save(model, tokenizer, tmp_path / family)
    args = ["generate", str(model_dir), "--prompt", PROMPTS[0], "--max-new-tokens", "12", "--seed", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith(PROMPTS[0]) and len(out) > len(PROMPTS[0])
    assert main(args) == 0 and capsys.readouterr().out == out  # seeded: reproducible
    assert main([*args, "--greedy", "--no-cache"]) == 0
    uncached = capsys.readouterr().out
    assert main([*args, "--greedy"]) == 0 and capsys.readouterr().out == uncached


def test_cli_generate_compile_gives_the_greedy_text(tokenizer, tmp_path, capsys):
    """--greedy --compile decodes through the torch.compile'd static step: the same text as --greedy."""
    model = _mixer("flat", vocab=len(tokenizer), seq_len=48)
    tokenizer.padding_side = "right"
    model_dir = _save(model, tokenizer, tmp_path / "mixer")
    args = ["generate", str(model_dir), "--prompt", PROMPTS[0], "--max-new-tokens", "12", "--greedy"]
    assert main(args) == 0
    greedy = capsys.readouterr().out
    assert main([*args, "--compile"]) == 0
    assert capsys.readouterr().out == greedy
    assert main([*args[:-1], "--compile", "--no-cache"]) == 2
    err = capsys.readouterr().err.strip()
    assert "add --greedy; drop --no-cache" in err and len(err.splitlines()) == 1


def test_cli_generate_bad_model_dir_is_one_line(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing" in err and len(err.splitlines()) == 1


def test_bench_generate_runs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "generate",
        "--hidden-size",
        "16",
        "--layers",
        "1",
        "--seq-len",
        "16",
        "--prompt-tokens",
        "8",
        "--new-tokens",
        "4",
        "--batch-sizes",
        "1",
        "2",
        "--dtypes",
        "fp32",
        "--repeats",
        "1",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    rows = json.loads(out.read_text())["results"]
    assert {(r["model"], r["batch_size"]) for r in rows} == {(m, b) for m in CONTENDERS for b in (1, 2)}
    assert set(CONTENDERS) == {"mixer-cached", "mixer-full-window", "mixer-no-cache", "llama-kv-cache"}
    assert all(r["tokens_per_s"] > 0 and r["ms_per_token"] > 0 for r in rows)
    assert "mixer-cached" in capsys.readouterr().out


def test_bench_generate_compile_adds_the_compiled_step_on_cpu(tmp_path, capsys):
    out = tmp_path / "bench.json"
    small = ["--hidden-size", "16", "--layers", "1", "--seq-len", "16", "--prompt-tokens", "8", "--new-tokens", "4"]
    args = ["bench", "generate", *small, "--batch-sizes", "1", "--dtypes", "fp32", "--repeats", "1", "--compile"]
    assert main([*args, "--output", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert {r["model"] for r in saved["results"]} == {*CONTENDERS, "mixer-compiled"}
    assert saved["ratios"][0]["compiled_vs_cached"] > 0
    assert "mixer-compiled: step speed-up over (a) cached" in capsys.readouterr().out
