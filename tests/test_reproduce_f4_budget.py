"""F4's equal compute time: the side-by-side probe of the models' step costs and the step limits it gives."""

import json

import pytest
import torch

from masked_mixers.core import clocks
from masked_mixers.core.errors import UserError
from masked_mixers.reproduce import f4_budget
from masked_mixers.reproduce.context import Context
from masked_mixers.reproduce.f4_budget import FLAG, PROBE_FILE, measure_step_costs, plan, realized_notes, time_plan
from masked_mixers.reproduce.scales import SCALES

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def fake_clock(monkeypatch):
    """A CPU clock that only the fake steps advance, so costs do not depend on this machine."""
    now = [0.0]
    monkeypatch.setattr(clocks, "_process_time", lambda: now[0])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return now


def test_probe_interleaves_blocks_and_gives_steps_inversely_proportional_to_the_median_cost(fake_clock):
    cost = {"mixer": 0.4, "llama": 0.5, "gpt2": 0.8}
    calls = []

    def step(side):
        def run():
            calls.append(side)
            burst = 10.0 if side == "llama" and len(calls) == 10 else 1.0  # the first timed llama step hit by load
            fake_clock[0] += cost[side] * burst

        return run

    blocks = measure_step_costs({side: step(side) for side in cost}, rounds=5, block=3, warmup=2)
    timed = calls[6:]  # 2 warm-up steps each first
    blocks_run = [timed[i] for i in range(0, len(timed), 3)]
    assert blocks_run == ["mixer", "llama", "gpt2", "gpt2", "llama", "mixer"] * 2 + ["mixer", "llama", "gpt2"]
    assert blocks["llama"][0] == pytest.approx((5.0 + 0.5 + 0.5) / 3)  # the burst stays in its block ...
    assert blocks["llama"][1:] == pytest.approx([0.5] * 4) and blocks["gpt2"] == pytest.approx([0.8] * 5)
    got = plan(blocks, reference_steps=250, clock="CPU")  # ... and the median leaves it out
    assert got.steps == {"mixer": 312, "llama": 250, "gpt2": 156}  # floor(250 x 0.5 / cost)
    assert got.seconds == pytest.approx(125.0) and got.per_step("llama") == pytest.approx(0.5)
    third = plan({"llama": [0.3, 0.3, 0.3], "mixer": [0.1, 0.1, 0.1]}, reference_steps=7, clock="CPU")
    assert third.steps == {"llama": 7, "mixer": 21}  # the reference's own steps survive float error


def test_realized_compute_ratio_to_llama_is_noted_and_flagged_beyond_the_band():
    seeds = [
        {"mixer": {"compute_seconds": 110.0}, "llama": {"compute_seconds": 100.0}, "gpt2": {"compute_seconds": 99.0}},
        {"mixer": {"compute_seconds": 130.0}, "llama": {"compute_seconds": 100.0}, "gpt2": {"compute_seconds": None}},
    ]
    first, second = realized_notes(seeds, ("mixer", "llama", "gpt2"))
    assert "mixer 110 s (1.10x Llama)" in first and "gpt2 99 s (0.99x Llama)" in first and "FLAGGED" not in first
    assert f"FLAGGED: mixer beyond +-{FLAG:.0%}" in second and "gpt2 n/a" in second


def _tiny(tmp_path, code="a"):
    ctx = Context(SCALES["tiny"], output_dir=tmp_path, code_sha256=code).for_finding("F4")
    models = [ctx.spec("mixer", name="mixer", mixer_type="flat"), ctx.spec("llama", name="llama")]
    s = ctx.scale
    ids = torch.randint(s.vocab_size, (s.batch_size, s.seq_len), generator=torch.Generator().manual_seed(0))
    return ctx, models, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def test_the_real_probe_is_saved_and_a_resumed_run_reuses_it(tmp_path, monkeypatch):
    ctx, models, batch = _tiny(tmp_path)
    first = time_plan(ctx, models, batch, bf16=False)
    assert first.steps["llama"] == ctx.scale.clm_steps and first.steps["mixer"] >= 1 and first.clock == "CPU"
    assert all(len(first.blocks[side]) == f4_budget.ROUNDS and min(first.blocks[side]) > 0 for side in first.blocks)
    saved = json.loads((tmp_path / "F4" / PROBE_FILE).read_text())
    assert saved["blocks"] == first.blocks and saved["code_sha256"] == "a"

    def no_probe(*args):
        raise AssertionError("probed again")

    monkeypatch.setattr(f4_budget, "training_step", no_probe)
    assert time_plan(ctx, models, batch, bf16=False) == first  # same models and code: the same plan, exactly
    with pytest.raises(AssertionError, match="probed again"):  # other code: a new probe
        time_plan(_tiny(tmp_path, code="b")[0], models, batch, bf16=False)


def test_a_probe_file_masked_mixers_did_not_write_is_never_replaced(tmp_path):
    ctx, models, batch = _tiny(tmp_path)
    (tmp_path / "F4").mkdir()
    (tmp_path / "F4" / PROBE_FILE).write_text("the user's notes")
    with pytest.raises(UserError, match=f"{PROBE_FILE}: exists and was not written by masked-mixers"):
        time_plan(ctx, models, batch, bf16=False)
    assert (tmp_path / "F4" / PROBE_FILE).read_text() == "the user's notes"
