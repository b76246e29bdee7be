"""The static-shape decoding step (generation/compiled.py) decodes exactly what generate() does; its refusals."""

import pytest
import torch

from masked_mixers.core.errors import UserError
from masked_mixers.generation.compiled import static_greedy_generate
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model


def _model(mixer_type: str, seq_len: int = 16):
    torch.manual_seed(0)
    spec = ModelSpec(
        family="mixer", mixer_type=mixer_type, hidden_size=16, num_hidden_layers=2, seq_len=seq_len, num_heads=2
    )
    return build_model(spec, 40)[0].eval()


@pytest.mark.parametrize("mixer_type", ["flat", "expanded", "multihead"])
def test_static_step_matches_generate(mixer_type):
    model = _model(mixer_type)
    ids = torch.randint(1, 40, (3, 5), generator=torch.Generator().manual_seed(1))
    expected = model.generate(
        ids, max_new_tokens=11, do_sample=False, use_cache=False, pad_token_id=0, eos_token_id=None
    )
    times = {}
    got = static_greedy_generate(model, ids, 11, mode="eager", times=times)
    assert torch.equal(got, expected)
    assert set(times) == {"prefill_s", "setup_s", "steps_s", "total_s", "timed_steps"} and times["timed_steps"] == 10
    assert torch.equal(static_greedy_generate(model, ids, 1, mode="eager"), expected[:, :6])


def test_compiled_step_matches_generate_and_compiles_once():
    """torch.compile of the step (Inductor) decodes what generate() does, and a second decoder of the same
    model and shapes reuses the compiled step (no recompilation per request)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = _model("flat")
    ids = torch.randint(1, 40, (1, 5), generator=torch.Generator().manual_seed(1))
    expected = model.generate(ids, max_new_tokens=9, do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None)
    times = {}
    assert torch.equal(static_greedy_generate(model, ids, 9, mode="compile", times=times), expected)
    assert times["timed_steps"] == 7  # the first step, which compiles, is setup
    compiled = counters["stats"]["unique_graphs"]
    assert compiled >= 1
    assert torch.equal(static_greedy_generate(model, ids, 9, mode="compile"), expected)
    assert counters["stats"]["unique_graphs"] == compiled


def test_refusals_are_one_line():
    model = _model("flat")
    ids = torch.ones(1, 10, dtype=torch.long)
    with pytest.raises(UserError, match="CUDA graphs need a CUDA device"):
        static_greedy_generate(model, ids, 2, mode="cuda-graph")
    with pytest.raises(UserError, match="exceed seq_len 16"):
        static_greedy_generate(model, ids, 7, mode="eager")
    with pytest.raises(UserError, match="mode must be one of"):
        static_greedy_generate(model, ids, 2, mode="fast")
    llama = build_model(ModelSpec(family="llama", hidden_size=16, num_hidden_layers=1, seq_len=16, num_heads=2), 40)[0]
    with pytest.raises(UserError, match="only masked mixers"):
        static_greedy_generate(llama, ids, 2, mode="eager")
