"""The scorecard's verdict rule (reproduce/verdict.py) on hand-made numbers."""

import math

from masked_mixers.reproduce.verdict import AGREES, DISAGREES, INCONCLUSIVE, better, holds, overall


def test_lower_is_better_agrees_when_every_seed_and_the_mean_beat_the_noise():
    check = better("a beats b", "-", "a", [1.0, 1.1], "b", [2.0, 2.1])
    assert check.verdict == AGREES
    assert "a better" in check.reason and "seed noise 0.1" in check.reason


def test_the_opposite_direction_disagrees():
    assert better("a beats b", "-", "a", [3.0, 3.1], "b", [2.0, 2.1]).verdict == DISAGREES


def test_higher_is_better_flips_the_direction():
    assert better("a beats b", "-", "a", [0.9, 0.8], "b", [0.1, 0.2], lower_is_better=False).verdict == AGREES


def test_seeds_that_disagree_on_the_direction_are_inconclusive():
    check = better("a beats b", "-", "a", [1.0, 2.5], "b", [2.0, 2.0])
    assert check.verdict == INCONCLUSIVE and "seeds disagree" in check.reason


def test_a_gap_within_seed_noise_is_inconclusive():
    # both seeds favour a, by 0.1 each, but a itself moves by 0.5 between seeds
    check = better("a beats b", "-", "a", [1.0, 1.5], "b", [1.1, 1.6])
    assert check.verdict == INCONCLUSIVE and "within seed noise" in check.reason


def test_one_seed_decides_by_direction_and_says_there_is_no_noise_estimate():
    check = better("a beats b", "-", "a", [1.0], "b", [1.01])
    assert check.verdict == AGREES and "no noise estimate" in check.reason


def test_parity_tolerance_accepts_a_small_loss_but_not_a_large_one():
    assert better("a about b", "-", "a", [1.01, 1.015], "b", [1.0, 1.0], tolerance=0.02).verdict == AGREES
    assert better("a about b", "-", "a", [1.5, 1.52], "b", [1.0, 1.01], tolerance=0.02).verdict == DISAGREES


def test_a_missing_or_nonfinite_value_is_inconclusive_not_a_crash():
    assert better("a beats b", "-", "a", [None, 1.0], "b", [2.0, 2.0]).verdict == INCONCLUSIVE
    assert better("a beats b", "-", "a", [math.nan], "b", [2.0]).verdict == INCONCLUSIVE
    assert holds("x", "-", {"m": [None]}, True, "r").verdict == INCONCLUSIVE


def test_overall_counts_protocol_checks_and_ignores_variants():
    agree, disagree = holds("x", "-", {}, True, "r"), holds("y", "-", {}, False, "r")
    variant = holds("v", "-", {}, False, "r", variant=True)
    assert overall([agree, variant]) == (AGREES, "every check agrees (1 agrees)")
    assert overall([disagree])[0] == DISAGREES
    verdict, reason = overall([agree, disagree])
    assert verdict == INCONCLUSIVE and "split" in reason
    assert overall([variant])[0] == INCONCLUSIVE


def test_an_exact_tie_is_inconclusive_as_no_gap():
    check = better("a beats b", "-", "a", [1.0, 3.0], "b", [2.0, 2.0])
    assert check.verdict == INCONCLUSIVE and check.reason.endswith("no gap")
