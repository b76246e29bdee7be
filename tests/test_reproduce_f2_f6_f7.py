"""F2, F6 and F7 of `reproduce` on hand-made rows: bands, instability checks, step-matched gaps, the models."""

import math
from dataclasses import replace

import pytest

from masked_mixers.reproduce import f2_flexibility as f2
from masked_mixers.reproduce import f6_bidirectional as f6
from masked_mixers.reproduce import f7_linear as f7
from masked_mixers.reproduce.context import Context
from masked_mixers.reproduce.scales import SCALES
from masked_mixers.reproduce.verdict import AGREES, DISAGREES, INCONCLUSIVE


def _row(eval_loss, diverged_at=None, spikes=0, grad=1.0):
    return dict(eval_loss=eval_loss, diverged_at=diverged_at, loss_spikes=spikes, largest_grad_norm=grad)


def _sweeps(ablated: list[dict], whole: list[dict] | None = None) -> list[dict]:
    """Per seed {(family, ablation): row}: the whole mixer (held-out loss 2.0, grad norm 1.0) and the ablated one."""
    whole = whole or [_row(2.0) for _ in ablated]
    return [{("mixer", "none"): w, ("mixer", "x"): a} for w, a in zip(whole, ablated)]


def _verdict(ablated, expected, whole=None):
    return f2._check("c", "-", _sweeps(ablated, whole), "mixer", "x", expected)


@pytest.mark.parametrize(
    "ratios, poor, fine",
    [
        ((0.99, 1.0, 1.01), DISAGREES, AGREES),  # ratio CI [0.975, 1.025]: inside "fine"
        ((1.09, 1.1, 1.11), INCONCLUSIVE, INCONCLUSIVE),  # between the bands
        ((1.0, 1.3, 1.0), INCONCLUSIVE, INCONCLUSIVE),  # the interval spans both bands
        ((1.29, 1.3, 1.31), AGREES, DISAGREES),  # CI above 1.15: "very poor"
    ],
)
def test_f2_loss_bands_do_not_overlap_and_are_judged_by_the_seeds_interval(ratios, poor, fine):
    assert f2.SLIGHT < f2.POOR
    ablated = [_row(2.0 * r) for r in ratios]
    assert _verdict(ablated, f2.VERY_POOR).verdict == poor
    assert _verdict(ablated, f2.FINE).verdict == fine


def test_f2_divergence_is_very_poor_a_diverged_baseline_and_too_few_seeds_are_inconclusive():
    diverged = [_row(None, diverged_at=8)] * 3
    assert _verdict(diverged, f2.VERY_POOR).verdict == AGREES
    assert _verdict(diverged, f2.FINE).verdict == DISAGREES
    assert _verdict([_row(None, diverged_at=8), _row(2.6), _row(2.62)], f2.VERY_POOR).verdict == AGREES
    # one seed diverged, the others look fine: neither band
    assert _verdict([_row(None, diverged_at=8), _row(2.0), _row(2.01)], f2.FINE).verdict == INCONCLUSIVE
    check = _verdict(diverged, f2.VERY_POOR, whole=[_row(2.0), _row(None, diverged_at=12), _row(2.0)])
    assert check.verdict == INCONCLUSIVE and "whole model diverged at step 12" in check.reason
    check = _verdict(diverged[:2], f2.VERY_POOR)
    assert check.verdict == INCONCLUSIVE and "too few seeds" in check.reason


@pytest.mark.parametrize(
    "ablated, unstable, stable",
    [
        ([_row(2.1, grad=1.5)] * 3, DISAGREES, AGREES),  # no spike, gradients like the whole model's
        ([_row(2.1, spikes=2, grad=1.5)] * 3, AGREES, DISAGREES),  # loss spikes on every seed
        ([_row(2.1, grad=50.0)] * 3, AGREES, DISAGREES),  # gradient spikes (>= 10x) on every seed
        ([_row(2.1, grad=math.inf)] * 3, AGREES, DISAGREES),  # a gradient norm gone to infinity
        ([_row(None, diverged_at=5, grad=2.0)] * 3, AGREES, DISAGREES),
        ([_row(2.1, grad=5.0)] * 3, INCONCLUSIVE, INCONCLUSIVE),  # between 3x and 10x
        ([_row(2.1, spikes=1), _row(2.1), _row(2.1)], INCONCLUSIVE, INCONCLUSIVE),  # the seeds differ
        ([_row(2.1, grad=None)] * 3, INCONCLUSIVE, INCONCLUSIVE),  # no gradient norm logged
    ],
)
def test_f2_instability_is_spikes_and_the_largest_gradient_norm_on_every_seed(ablated, unstable, stable):
    assert f2.CALM < f2.SPIKY
    assert _verdict(ablated, f2.UNSTABLE_RUN).verdict == unstable
    assert _verdict(ablated, f2.STABLE_RUN).verdict == stable


def test_f2_checks_cover_the_claims_instability():
    unstable = {(family, ablation) for _, _, family, ablation, band in f2.CLAIMS if band == f2.UNSTABLE_RUN}
    stable = {(family, ablation) for _, _, family, ablation, band in f2.CLAIMS if band == f2.STABLE_RUN}
    assert unstable == {("llama", "no_layer_norm"), ("llama", "no_residual")}
    assert stable == {("mixer", "no_layer_norm")}


def _same(bidirectional, causal):
    return f6.same_relative(bidirectional, causal).verdict


def test_f6_relative_gaps_about_the_same_is_an_equivalence_test():
    assert _same([0.02, 0.03, 0.025], [0.01, 0.025, 0.02]) == AGREES  # differences ~0.007, CI inside +-0.05
    assert _same([0.25, 0.3, 0.28], [0.01, 0.02, 0.015]) == DISAGREES  # CI wholly above 0.05
    assert _same([0.1, -0.1, 0.05], [0.0, 0.0, 0.0]) == INCONCLUSIVE  # too noisy to say
    assert _same([0.02, 0.03], [0.01, 0.02]) == INCONCLUSIVE  # too few seeds
    assert _same([0.02, None, 0.03], [0.01, 0.02, 0.02]) == INCONCLUSIVE  # a failed run
    assert f6._relative([2.2, None], [2.0, 2.0]) == [pytest.approx(0.1), None]


class _FakeContext(Context):
    """Returns hand-made rows instead of training, and records what was asked for."""

    def seeded(self, finding, models, steps, packing=True):
        self.asked = (finding, [m.name for m in models], steps)
        loss = {"mixer": 2.2, "llama": 2.0, "causal-mixer": 3.3, "causal-llama": 3.0}
        return [
            {m.name: dict(eval_loss=loss[m.name] + 0.001 * i, steps=steps, train_seconds=1.0) for m in models}
            for i in range(self.scale.seeds)
        ]


def test_f6_trains_the_causal_pair_step_matched_with_the_bidirectional_one(tmp_path):
    ctx = _FakeContext(scale=replace(SCALES["tiny"], seeds=3), output_dir=tmp_path)
    measured = f6.run(ctx)
    finding, names, steps = ctx.asked
    assert finding == "F6" and set(names) == set(f6.SIDES) and steps == ctx.scale.bidirectional_steps
    same = measured.checks[0]
    assert same.claim == f6.SAME_CLAIM and same.verdict == AGREES and same.n == 3  # both gaps 10%


def test_f7_compares_the_reference_models_at_equal_depth(tmp_path):
    ctx = Context(scale=SCALES["cpu"], output_dir=tmp_path)
    specs = {spec.name: spec for spec in f7.specs(ctx)}
    assert {name: specs[name].num_hidden_layers for name in f7.SIDES} == dict.fromkeys(f7.SIDES, 1)
    assert (specs["linear"].linear_variant, specs["near_linear"].linear_variant) == ("linear", "near_linear")
    assert specs["mixer-1-layer"].family == "mixer" and specs["mixer-1-layer"].hidden_size == ctx.scale.d_model
    assert specs[f7.DEEP].num_hidden_layers == ctx.scale.layers > 1  # what the collapse shrinks
    assert "three epochs: 3.25/3.27/3.24" in f7.FINDING.published and "1 epoch" not in f7.FINDING.published
