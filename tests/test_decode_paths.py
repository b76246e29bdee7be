"""The one-slot path of cached decoding (SlotBatch.slot) against the general path.

When every row of a decoding step sits at one slot (batch 1, or prompts of one length) the token
mixings read their weight rows as slices, without index tensors or masks. These tests run the
same steps twice, once as decoding chooses (the one-slot path, checked to be taken) and once with
`MaskedMixerCache.at_slot` replaced by the general SlotBatch of the same slot, and compare logits
at every step, across re-primes of the sliding window; with plain models, the linear mixer family,
and mixings wrapped by PEFT LoRA and by a forward hook, which must act on both paths alike.
"""

import pytest
import torch

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM
from masked_mixers.models import LinearMixerConfig, LinearMixerForCausalLM
from masked_mixers.models.masked_mixer.cache import MaskedMixerCache

VOCAB, L = 50, 8


def _mixer(mixer_type: str) -> MaskedMixerForCausalLM:
    torch.manual_seed(0)
    config = MaskedMixerConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        seq_len=L,
        mixer_type=mixer_type,
        num_heads=4,
        expansion=2,
    )
    return MaskedMixerForCausalLM(config).eval()


def _linear_mixer() -> LinearMixerForCausalLM:
    torch.manual_seed(0)
    config = LinearMixerConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=3, seq_len=L, variant="near_linear", ff_mult=2
    )
    return LinearMixerForCausalLM(config).eval()


def _general_at_slot(self: MaskedMixerCache, slot: int):
    """What decoding did before the one-slot path: every row's slot as an index tensor."""
    rows = torch.full((self.tokens.shape[0], 1), slot, dtype=torch.long, device=self.tokens.device)
    return self.at(rows, None, slot + 1)


def _step_logits(model, ids: torch.Tensor, prompt: int = 3) -> torch.Tensor:
    """Logits of every cached step after a `prompt`-token prompt: (steps, b, vocab)."""
    with torch.no_grad():
        cache = model(input_ids=ids[:, :prompt], use_cache=True).cache
        steps = [model(input_ids=ids[:, n : n + 1], cache=cache).logits[:, -1] for n in range(prompt, ids.shape[1])]
    return torch.stack(steps)


def _both_paths(model, ids: torch.Tensor, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    slots = []
    at_slot = MaskedMixerCache.at_slot
    monkeypatch.setattr(MaskedMixerCache, "at_slot", lambda self, slot: slots.append(slot) or at_slot(self, slot))
    fast = _step_logits(model, ids)
    # the one-slot path ran at every step, at the slots the window dictates (re-primes included)
    assert slots[: L - 3] == list(range(3, L)) and slots[L - 3] == L // 2 and len(slots) == ids.shape[1] - 3
    monkeypatch.setattr(MaskedMixerCache, "at_slot", _general_at_slot)
    return fast, _step_logits(model, ids)


def _ids(batch: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, 3 * L), generator=torch.Generator().manual_seed(batch))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", ["flat", "expanded", "multihead", "linear_mixer"])
def test_one_slot_path_equals_the_general_path(family, batch, monkeypatch):
    model = _linear_mixer() if family == "linear_mixer" else _mixer(family)
    fast, general = _both_paths(model, _ids(batch), monkeypatch)
    torch.testing.assert_close(fast, general, atol=1e-6, rtol=0)


WRAPPED = {
    "flat": dict(target_modules=[], target_parameters=["token_mixing.weight"]),
    "expanded": dict(target_modules=[], target_parameters=["token_mixing.weight_in", "token_mixing.weight_out"]),
    "multihead": dict(target_modules=["proj_in", "proj_out"]),
}


@pytest.mark.parametrize("mixer_type", list(WRAPPED))
def test_one_slot_path_runs_wrapped_mixings(mixer_type, monkeypatch):
    """LoRA on the mixing weights (or the multi-head projections) and a hook that edits the token
    mixing's output: both change the decoded logits, and both paths give the same ones."""
    peft = pytest.importorskip("peft")
    ids = _ids(2)
    plain = _step_logits(_mixer(mixer_type), ids)
    lora = peft.LoraConfig(r=2, lora_alpha=4, init_lora_weights=False, **WRAPPED[mixer_type])
    model = peft.get_peft_model(_mixer(mixer_type), lora).eval()
    calls = []
    mixing = model.base_model.model.model.layers[0].token_mixing
    mixing.register_forward_hook(lambda module, args, out: calls.append(out.shape[1]) or out * 0.5)
    fast, general = _both_paths(model, ids, monkeypatch)
    assert calls.count(1) == 2 * (ids.shape[1] - 3)  # the hook ran at every step of both runs
    assert (fast - plain).abs().max() > 1e-3, "the adapters and the hook do not reach the decoded logits"
    torch.testing.assert_close(fast, general, atol=1e-6, rtol=0)
