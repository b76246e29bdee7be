"""Modules users wrap take part in every path: PEFT LoRA, torch.ao dynamic int8, forward hooks.

Cached decoding runs the blocks' own modules (MixerBlock.forward with a cache), so whatever
wraps `up`/`down`, the multi-head projections or the mixing matrix itself acts on generation
exactly as on a full forward; these tests check that by comparing cached steps with full forwards
of the *wrapped* model, and that adapters train and change the output.
"""

import pytest
import torch
from torch import nn

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM

peft = pytest.importorskip("peft")

VOCAB, L = 60, 10


def _mixer(mixer_type: str = "flat", seed: int = 0) -> MaskedMixerForCausalLM:
    torch.manual_seed(seed)
    config = MaskedMixerConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, seq_len=L, mixer_type=mixer_type, num_heads=4
    )
    return MaskedMixerForCausalLM(config).eval()


def _ids(batch: int = 2, length: int = 25, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def _cached_equals_full(model, ids: torch.Tensor, prompt: int = 4, atol: float = 1e-5) -> None:
    """Every cached step's logits equal a full forward over the same window (first L tokens: no re-prime)."""
    with torch.no_grad():
        cache = model(input_ids=ids[:, :prompt], use_cache=True).cache
        for n in range(prompt + 1, L + 1):
            step = model(input_ids=ids[:, n - 1 : n], cache=cache).logits[:, -1]
            full = model(input_ids=ids[:, :n]).logits[:, -1]
            torch.testing.assert_close(step, full, atol=atol, rtol=0, msg=f"step {n}")


LORA_TARGETS = {
    "feed-forward": ("flat", dict(target_modules=["up", "down"])),
    "multihead projections": ("multihead", dict(target_modules=["proj_in", "proj_out"])),
    "flat mixing matrix": ("flat", dict(target_modules=[], target_parameters=["token_mixing.weight"])),
    "expanded mixing matrices": (
        "expanded",
        dict(target_modules=[], target_parameters=["token_mixing.weight_in", "token_mixing.weight_out"]),
    ),
}


@pytest.mark.parametrize("where", list(LORA_TARGETS))
def test_lora_changes_the_output_in_every_path_and_trains(where):
    mixer_type, targets = LORA_TARGETS[where]
    base = _mixer(mixer_type)
    ids = _ids()
    with torch.no_grad():
        before = base(input_ids=ids[:, :L]).logits.clone()
    # init_lora_weights=False: both factors random, so the adapters are non-zero from the start
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, **targets)).eval()
    with torch.no_grad():
        after = model(input_ids=ids[:, :L]).logits
    assert (after - before).abs().max() > 1e-3, "the adapters do not reach the output"
    _cached_equals_full(model, ids)

    # causal still: a later token changes nothing before it, adapters included
    changed = ids[:, :L].clone()
    changed[:, 6] = (changed[:, 6] + 1) % VOCAB
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=changed).logits[:, :6], after[:, :6], atol=1e-6, rtol=0)

    # it trains: only adapter weights get gradients, and a few steps lower the loss
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    batch = ids[:, :L]
    losses = []
    for _ in range(10):
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable)
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def _cached_step_logits(model, ids: torch.Tensor, prompt: int = 4) -> torch.Tensor:
    with torch.no_grad():
        cache = model(input_ids=ids[:, :prompt], use_cache=True).cache
        return torch.stack(
            [model(input_ids=ids[:, n - 1 : n], cache=cache).logits[:, -1] for n in range(prompt + 1, L + 1)]
        )


def test_dynamic_int8_quantization_runs_in_every_path():
    """Dynamic int8 scales each input by its own range, so cached steps only approximate full forwards:
    checked here is that the int8 layers run in both paths (outputs differ from fp32) and stay close."""
    model = _mixer()
    ids = _ids()
    with torch.no_grad():
        reference, reference_steps = model(input_ids=ids[:, :L]).logits, _cached_step_logits(model, ids)
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    assert type(quantized.model.layers[0].feed_forward.up).__module__.startswith("torch.ao.nn.quantized")
    with torch.no_grad():
        logits, steps = quantized(input_ids=ids[:, :L]).logits, _cached_step_logits(quantized, ids)
        generated = quantized.generate(ids[:, :4], max_new_tokens=15, do_sample=False)  # cached, past L: re-primes
    for got, want in ((logits, reference), (steps, reference_steps)):
        assert not torch.equal(got, want)  # the int8 layers ran ...
        torch.testing.assert_close(got, want, atol=0.1, rtol=0)  # ... and approximate the fp32 ones
    assert generated.shape == (2, 19)


@pytest.mark.parametrize("mixer_type", ["flat", "multihead"])
def test_forward_hooks_fire_during_cached_generation(mixer_type):
    model = _mixer(mixer_type)
    seen: dict[str, list[tuple[int, ...]]] = {}
    names = [
        "model.layers.0.feed_forward.up",
        "model.layers.1.feed_forward.down",
        "model.layers.0.token_mixing",
        "model.layers.1.token_norm",
    ]
    if mixer_type == "multihead":
        names.append("model.layers.0.token_mixing.proj_in")
    for name in names:
        model.get_submodule(name).register_forward_hook(
            lambda m, args, out, name=name: seen.setdefault(name, []).append(tuple(out.shape))
        )
    new = 6
    with torch.no_grad():
        model.generate(_ids()[:, :4], max_new_tokens=new, do_sample=False, use_cache=True)
    for name in names:
        shapes = seen.get(name, [])
        assert len(shapes) == new, (name, shapes)  # the prompt, then one call per later token
        assert all(shape[:2] == (2, 1) for shape in shapes[1:]), (
            name,
            shapes,
        )  # decoding steps: one new position per row


def test_hooks_can_change_cached_generation():
    """A hook that edits `down`'s output changes what generate() produces, with or without the cache alike."""
    model = _mixer()
    prompt = _ids()[:, :4]
    with torch.no_grad():
        plain = model.generate(prompt, max_new_tokens=8, do_sample=False)
    model.model.layers[1].feed_forward.down.register_forward_hook(lambda m, args, out: out * -3.0)
    with torch.no_grad():
        cached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=True)
        uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, plain)


@pytest.mark.parametrize("where", ["flat mixing matrix", "expanded mixing matrices"])
def test_a_lora_merged_mixing_matrix_is_saved_causal(where, tmp_path):
    """merge_and_unload writes the adapter's full-rank product into the mixing matrices, future entries
    included; forward masks them, and the saved weights (state_dict, safetensors) have them zero."""
    from safetensors.torch import load_file

    mixer_type, targets = LORA_TARGETS[where]
    base = _mixer(mixer_type)
    model = peft.get_peft_model(base, peft.LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, **targets))
    merged = model.merge_and_unload().eval()
    mixing = merged.model.layers[0].token_mixing
    masks = mixing.causal_masks()
    assert any(getattr(mixing, name)[~mask].abs().max() > 1e-3 for name, mask in masks.items())  # the merge wrote them
    ids = _ids()[:, :L]
    with torch.no_grad():
        logits = merged(input_ids=ids).logits.clone()
    merged.save_pretrained(tmp_path)
    saved = load_file(str(tmp_path / "model.safetensors"))
    for i in range(len(merged.model.layers)):
        for name, mask in masks.items():
            assert saved[f"model.layers.{i}.token_mixing.{name}"][~mask].abs().max() == 0, name
    assert any(getattr(mixing, name)[~mask].abs().max() > 1e-3 for name, mask in masks.items())  # parameters untouched
    reloaded = MaskedMixerForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, logits, atol=1e-5, rtol=0)
