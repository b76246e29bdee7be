"""The scorecard's verdict rule (reproduce/verdict.py): hand-made numbers and seeded simulations of its error rates."""

import math
import random

import pytest

from masked_mixers.reproduce.verdict import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    better,
    holds,
    interval,
    overall,
    t_quantile,
)

SIMULATIONS, NOISE = 2000, 0.05  # seed noise: each side's held-out loss varies by this sd between seeds


def _sides(rng, n, gap=0.0, centre=2.0):
    """(a, b) per seed: independent Gaussian seed noise, a lower (better) than b by `gap` on average."""
    return [centre - gap + rng.gauss(0, NOISE) for _ in range(n)], [centre + rng.gauss(0, NOISE) for _ in range(n)]


def _verdicts(n, gap=0.0, seed=0, **options):
    rng = random.Random(seed)
    verdicts = []
    for _ in range(SIMULATIONS):
        a, b = _sides(rng, n, gap)
        verdicts.append(better("a beats b", "-", "a", a, "b", b, **options).verdict)
    return verdicts


@pytest.mark.parametrize("n", [3, 5])
def test_identical_sides_give_a_decisive_verdict_at_most_5_percent_of_the_time(n):
    """The rule's rate on identical sides is 5% by construction (2.5% each way, an exact t interval).

    2,000 seeded draws estimate it with a standard error of 0.49% (0.35% per side), so the sampled
    rate is held to 5% within 3 standard errors: a wrong quantile (1.96 gives 19% at n 3, 12% at n 5)
    or a missing seed check fails this, the draw's luck does not.
    """
    verdicts = _verdicts(n)
    se = math.sqrt(0.05 * 0.95 / SIMULATIONS)
    assert verdicts.count(AGREES) / SIMULATIONS <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / SIMULATIONS)
    assert verdicts.count(DISAGREES) / SIMULATIONS <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / SIMULATIONS)
    assert 0.05 - 3 * se <= (SIMULATIONS - verdicts.count(INCONCLUSIVE)) / SIMULATIONS <= 0.05 + 3 * se


def test_a_true_gap_of_3_sigma_agrees_at_least_80_percent_of_the_time_at_5_seeds():
    verdicts = _verdicts(5, gap=3 * NOISE)
    assert verdicts.count(AGREES) / SIMULATIONS >= 0.8 and verdicts.count(DISAGREES) == 0


def test_the_t_quantiles_and_the_interval():
    assert t_quantile(2) == pytest.approx(4.303) and t_quantile(1000) == pytest.approx(1.96)
    low, high = interval([1.0, 2.0, 3.0])  # mean 2, sd 1, t(0.975, 2) 4.303
    assert (low, high) == pytest.approx((2 - 4.303 / math.sqrt(3), 2 + 4.303 / math.sqrt(3)))
    scipy = pytest.importorskip("scipy.stats")
    assert all(t_quantile(df) == pytest.approx(scipy.t.ppf(0.975, df), abs=1e-3) for df in range(1, 31))


def test_fewer_than_3_seeds_is_inconclusive_however_large_the_gap():
    for a, b in (([1.0], [5.0]), ([1.0, 1.1], [5.0, 5.1])):
        check = better("a beats b", "-", "a", a, "b", b)
        assert check.verdict == INCONCLUSIVE and check.reason.startswith("too few seeds") and check.n == len(a)


def test_the_check_records_gaps_n_and_interval():
    check = better("a beats b", "-", "a", [1.0, 1.1, 1.05], "b", [2.0, 2.1, 2.0])
    assert check.verdict == AGREES and check.n == 3 and check.gaps == pytest.approx([1.0, 1.0, 0.95])
    assert check.interval == pytest.approx(list(interval(check.gaps))) and check.interval[0] > 0
    assert "95% CI" in check.reason and check.to_dict()["interval"] == check.interval


def test_direction_and_higher_is_better():
    assert better("a beats b", "-", "a", [3.0, 3.1, 3.05], "b", [2.0, 2.1, 2.0]).verdict == DISAGREES
    assert (
        better("a beats b", "-", "a", [0.9, 0.8, 0.85], "b", [0.1, 0.2, 0.15], lower_is_better=False).verdict == AGREES
    )


def test_a_gap_within_seed_noise_is_inconclusive():
    check = better("a beats b", "-", "a", [1.0, 2.5, 1.6], "b", [2.0, 2.0, 1.5])
    assert check.verdict == INCONCLUSIVE and "straddles" in check.reason


def test_a_size_claim_needs_the_stated_effect():
    a, b = [1.8, 1.81, 1.79], [2.0, 2.01, 1.99]  # a better by 10% of b, tightly
    assert better("a far better", "-", "a", a, "b", b, effect=0.05).verdict == AGREES
    assert better("a far better", "-", "a", a, "b", b, effect=0.25).verdict == DISAGREES  # better, but not far better
    with pytest.raises(ValueError):
        better("x", "-", "a", a, "b", b, tolerance=0.1, effect=0.1)


def test_parity_inside_the_band_agrees_straddling_it_is_inconclusive_outside_disagrees():
    b = [1.0, 1.0, 1.0]
    assert better("a about b", "-", "a", [1.01, 1.012, 1.008], "b", b, tolerance=0.02).verdict == AGREES
    assert better("a about b", "-", "a", [0.8, 0.82, 0.81], "b", b, tolerance=0.02).verdict == AGREES  # or better
    straddle = better("a about b", "-", "a", [1.0, 1.04, 1.02], "b", b, tolerance=0.02)
    assert straddle.verdict == INCONCLUSIVE and straddle.interval[0] < -0.02 < straddle.interval[1]
    assert better("a about b", "-", "a", [1.5, 1.52, 1.51], "b", b, tolerance=0.02).verdict == DISAGREES


def test_the_papers_own_f4_numbers_do_not_disagree_with_its_parity_claim():
    from masked_mixers.reproduce.f4_clm import PARITY

    assert (
        better("mixer about Llama", "-", "mixer", [1.86], "llama", [1.71], tolerance=PARITY).verdict != DISAGREES
    )  # one seed
    rng = random.Random(0)
    for _ in range(100):  # the same numbers with seed noise, 5 seeds
        mixer, llama = [1.86 + rng.gauss(0, 0.01) for _ in range(5)], [1.71 + rng.gauss(0, 0.01) for _ in range(5)]
        assert better("mixer about Llama", "-", "mixer", mixer, "llama", llama, tolerance=PARITY).verdict != DISAGREES


def test_a_missing_or_nonfinite_value_is_inconclusive_not_a_crash():
    assert better("a beats b", "-", "a", [None, 1.0, 1.0], "b", [2.0, 2.0, 2.0]).verdict == INCONCLUSIVE
    assert better("a beats b", "-", "a", [math.nan] * 3, "b", [2.0] * 3).verdict == INCONCLUSIVE
    assert holds("x", "-", {"m": [None]}, True, "r").verdict == INCONCLUSIVE
    assert holds("x", "-", {"m": [1.0]}, None, "r").verdict == INCONCLUSIVE


def test_overall_counts_protocol_checks_and_ignores_variants():
    agree, disagree = holds("x", "-", {}, True, "r"), holds("y", "-", {}, False, "r")
    variant = holds("v", "-", {}, False, "r", variant=True)
    assert overall([agree, variant]) == (AGREES, "every check agrees (1 agrees)")
    assert overall([disagree])[0] == DISAGREES
    verdict, reason = overall([agree, disagree])
    assert verdict == INCONCLUSIVE and "split" in reason
    assert overall([variant])[0] == INCONCLUSIVE


def test_an_exact_tie_is_inconclusive():
    check = better("a beats b", "-", "a", [1.0, 2.0, 3.0], "b", [2.0, 2.0, 2.0])
    assert check.verdict == INCONCLUSIVE
