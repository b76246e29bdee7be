"""The rows of a continuous batch (serving/rows.py): the compiled step's bucketed cache against today's exact one.

Rows join and leave at random and run past L (each slides its window several times); at every step
`CompiledRows` must give the logits `CachedRows` (the model's own cached forward) gives, while its
capacity grows and shrinks through the buckets. The step runs eagerly here (`slots_step` itself,
for every mixing and the linear mixer) so the bookkeeping is what is tested; test_serve_continuous.py
runs the same rows through torch.compile in the engine.
"""

from __future__ import annotations

import random

import pytest
import torch

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM
from masked_mixers.generation import compiled
from masked_mixers.models import LinearMixerConfig, LinearMixerForCausalLM
from masked_mixers.serving import rows as rows_module
from masked_mixers.serving.rows import CachedRows, CompiledRows, bucket_sizes

VOCAB, L = 50, 8


def _model(kind: str):
    torch.manual_seed(0)
    if kind == "linear":
        config = LinearMixerConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, seq_len=L, ff_mult=2)
        return LinearMixerForCausalLM(config).eval()
    config = MaskedMixerConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, seq_len=L, mixer_type=kind, num_heads=4, expansion=2
    )
    return MaskedMixerForCausalLM(config).eval()


def _prefill(model, prompt: list[int]):
    """A one-row cache of `prompt` and its next token, as ContinuousBatch.admit makes them."""
    out = model(input_ids=torch.tensor([prompt], device=model.device), use_cache=True, sliding_window=True)
    return out.cache, int(out.logits[0, -1].argmax())


def test_bucket_sizes():
    assert bucket_sizes(1) == [1]
    assert bucket_sizes(8) == [1, 2, 4, 8]
    assert bucket_sizes(6) == [1, 2, 4, 6]


CUDA = pytest.param(
    "cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("kind", ["flat", "expanded", "multihead", "linear"])
def test_compiled_rows_give_the_cached_forward_logits(kind, device, monkeypatch):
    """(On CUDA too: scripts/gpu-check.sh runs it, so the host/device bookkeeping is checked where it serves.)"""
    monkeypatch.setattr(rows_module, "compiled_slots_step", lambda: compiled.slots_step)  # the step, uncompiled
    model, rng = _model(kind).to(device), random.Random(0)
    exact, bucketed = CachedRows(model), CompiledRows(model, 4)
    tokens: list[int] = []
    capacities = []
    with torch.inference_mode():
        for _ in range(60):
            if len(tokens) < 4 and rng.random() < 0.3:  # a request joins, its prompt 1 to L + 3 tokens (slid)
                prompt = [rng.randrange(1, VOCAB) for _ in range(rng.randint(1, L + 3))]
                (one, token), (other, _) = _prefill(model, prompt), _prefill(model, prompt)
                exact.add(one)
                bucketed.add(other)
                tokens.append(token)
            if tokens and rng.random() < 0.15:  # some rows leave
                live = [i for i in range(len(tokens)) if rng.random() < 0.6]
                exact.keep(live)
                bucketed.keep(live)
                tokens = [tokens[i] for i in live]
            if not tokens:
                continue
            expected, got = exact.logits(tokens), bucketed.logits(tokens)
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
            capacities.append(bucketed.capacity)
            tokens = expected.argmax(-1).tolist()
    assert {1, 2, 4} <= set(capacities)  # it grew through the buckets ...
    assert any(b < a for a, b in zip(capacities, capacities[1:]))  # ... and shrank when rows left


def test_compile_is_refused_in_one_line_where_it_cannot_serve(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from masked_mixers.core.errors import UserError
    from masked_mixers.serving.engine import Engine

    llama = LlamaForCausalLM(
        LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    with pytest.raises(UserError, match="--compile: only masked and linear mixers"):
        Engine(llama, None, compile=True)
    with pytest.raises(UserError, match="--compile: the compiled step serves continuous batching"):
        Engine(_model("flat"), None, batching="static", compile=True)


def test_compile_on_a_cpu_leaves_a_core_to_the_event_loop(capsys):
    """serve --compile on a CPU: every core but one unless --threads says (docs/serving.md: measured)."""
    import argparse

    from masked_mixers.commands.serve import _set_threads

    before = torch.get_num_threads()
    try:
        for compile, device, threads, expected in [
            (True, "cpu", None, 2),
            (False, "cpu", None, 3),
            (True, "cuda", None, 3),
            (True, "cpu", 3, 3),
        ]:
            torch.set_num_threads(3)
            _set_threads(argparse.Namespace(threads=threads, compile=compile), device)
            assert torch.get_num_threads() == expected, (compile, device, threads)
    finally:
        torch.set_num_threads(before)
    assert "2 torch thread(s), a core left to the event loop" in capsys.readouterr().out
