"""The scaling analysis (masked_mixers/scaling) on synthetic sweeps whose answers are known.

Losses follow Chinchilla's form L(N, D) = E + A / N^alpha + B / D^beta with D = C / (6 N), plus
Gaussian noise, measured on an isoFLOP design (7 sizes around each budget's optimum). Its optimal
loss is exactly L*(C) = E + K * C^(-b) with b = alpha * beta / (alpha + beta), and two such
families cross where their L* curves meet (found here by bisection on the true curves).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from masked_mixers.cli import main
from masked_mixers.scaling import analyse, read_results
from masked_mixers.scaling.analysis import NO_CROSSOVER
from masked_mixers.scaling.fit import EDGE, OPENS_DOWNWARD, TOO_FEW_SIZES, VERTEX, isoflop_optimum
from masked_mixers.scaling.report import markdown

LLAMA = {"E": 1.7, "A": 400.0, "alpha": 0.34, "B": 410.0, "beta": 0.28}
MIXER = {"E": 2.3, "A": 300.0, "alpha": 0.34, "B": 300.0, "beta": 0.28}  # lower at small C; crosses LLAMA near 2e17
MIXER_AHEAD = {**MIXER, "E": 1.7}  # lower over all measured budgets
BUDGETS = (1e15, 1e16, 1e17, 1e18, 1e19)
FACTORS = (1 / 8, 1 / 4, 1 / 2, 1, 2, 4, 8)  # sizes around each budget's optimal size


def chinchilla(n, c, E, A, alpha, B, beta):
    return E + A / n**alpha + B / (c / (6 * n)) ** beta


def optimal_size(c, E, A, alpha, B, beta):
    return (alpha * A / (beta * B)) ** (1 / (alpha + beta)) * (c / 6) ** (beta / (alpha + beta))


def optimal_loss(c, law):
    return chinchilla(optimal_size(c, **law), c, **law)


def exponent(law):
    return law["alpha"] * law["beta"] / (law["alpha"] + law["beta"])


def true_crossover(first, second, low=1e12, high=1e22):
    grid = np.geomspace(low, high, 400)
    gap = np.log(optimal_loss(grid, first)) - np.log(optimal_loss(grid, second))
    (i,) = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
    lo, hi = grid[i], grid[i + 1]
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        same = np.sign(np.log(optimal_loss(mid, first) / optimal_loss(mid, second))) == np.sign(gap[i])
        lo, hi = (mid, hi) if same else (lo, mid)
    return lo


def row(point, family, n, c, loss, seq_len=128, lr=1e-3, **extra):
    return {
        "point": point,
        "status": "done",
        "error": None,
        "overrides": {"model.family": family},
        "family": family,
        "d_model": 64,
        "n_layers": 2,
        "seq_len": seq_len,
        "learning_rate": lr,
        "budget_flops": c,
        "flops": c * 0.99,
        "params": n + 5000,
        "non_embedding_params": n,
        "steps": 10,
        "tokens": 1000,
        "eval_loss": loss,
        "train_loss": loss,
        "cpu_seconds": 1.0,
        "wall_seconds": 1.0,
        "revision": None,
        **extra,
    }


def sweep(family, law, rng, *, budgets=BUDGETS, factors=FACTORS, sigma=0.01, seq_len=128):
    rows = []
    for c in budgets:
        for f in factors:
            n = int(optimal_size(c, **law) * f)
            loss = chinchilla(n, c, **law) + rng.normal(0, sigma)
            rows.append(row(f"{family}-L{seq_len}-{c:.0e}-{n}", family, n, c, float(loss), seq_len))
    return rows


def only(analysis, family, seq_len=128):
    (context,) = [c for c in analysis["contexts"] if c["seq_len"] == seq_len]
    return context["families"][family]


def test_recovers_the_exponent_and_the_irreducible_loss():
    truth, inside = exponent(LLAMA), 0
    for seed in range(5):
        fam = only(analyse(sweep("llama", LLAMA, np.random.default_rng(seed)), resamples=200, seed=seed), "llama")
        assert fam["exponent"] == pytest.approx(truth, rel=0.05), seed
        assert fam["E"] == pytest.approx(LLAMA["E"], abs=0.1), seed
        assert fam["irreducible_rule"].startswith("E fitted"), fam["irreducible_rule"]
        low, high = fam["exponent_ci"]
        inside += low <= truth <= high
        assert [p["bound"] for p in fam["points"]] == [False] * len(BUDGETS)
    assert inside >= 4  # a 95% interval: most seeds, not necessarily all


def test_plain_power_law_without_e_below_four_budgets():
    law = {**LLAMA, "E": 0.0}  # L* = K * C^(-b) exactly
    fam = only(analyse(sweep("llama", law, np.random.default_rng(0), budgets=BUDGETS[:3]), resamples=100), "llama")
    assert fam["E"] is None and fam["irreducible_rule"].startswith("no E: 3 budgets")
    assert fam["exponent"] == pytest.approx(exponent(law), rel=0.05)
    assert fam["exponent_ci"][0] < fam["exponent"] < fam["exponent_ci"][1]


def test_recovers_the_crossover_within_its_interval():
    truth, inside = true_crossover(LLAMA, MIXER), 0
    assert BUDGETS[0] < truth < BUDGETS[-1]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        analysis = analyse(sweep("llama", LLAMA, rng) + sweep("mixer", MIXER, rng), resamples=200, seed=seed)
        (entry,) = analysis["contexts"][0]["crossovers"]
        found = entry["crossover"]
        assert isinstance(found, dict), entry
        assert found["flops"] == pytest.approx(truth, rel=0.5) and found["lower_below"] == "mixer"
        inside += found["ci"][0] <= truth <= found["ci"][1]
        assert entry["extrapolated"] is None and entry["share_in_range"] > 0.9
    assert inside >= 2


def test_no_crossover_in_the_measured_range_and_the_extrapolated_one_marked():
    llama, mixer = {**LLAMA, "E": 0.0}, {"E": 0.0, "A": 250.0, "alpha": 0.30, "B": 250.0, "beta": 0.25}
    truth = true_crossover(llama, mixer)  # plain power laws (E = 0, 3 budgets) that meet below the budgets
    assert truth < BUDGETS[0]
    rng = np.random.default_rng(0)
    rows = sweep("llama", llama, rng, budgets=BUDGETS[:3]) + sweep("mixer", mixer, rng, budgets=BUDGETS[:3])
    analysis = analyse(rows, resamples=100)
    (entry,) = analysis["contexts"][0]["crossovers"]
    assert entry["crossover"] == NO_CROSSOVER and entry["share_in_range"] == 0
    extra = entry["extrapolated"]
    assert extra["flops"] == pytest.approx(truth, rel=0.5) and extra["ci"][0] <= truth <= extra["ci"][1]
    assert extra["lower_below"] == "mixer" and "extrapolated beyond the measured budgets" in extra["note"]
    assert "no crossover in the measured range; by extrapolation (not measured)" in markdown(analysis)
    assert all(r["ahead"] == "llama" for r in analysis["contexts"][0]["leaders"])


def test_parallel_frontiers_never_cross():
    rng = np.random.default_rng(1)
    analysis = analyse(
        sweep("llama", LLAMA, rng, sigma=0) + sweep("mixer", {**LLAMA, "E": 2.2}, rng, sigma=0), resamples=50
    )
    (entry,) = analysis["contexts"][0]["crossovers"]
    assert entry["crossover"] == NO_CROSSOVER and entry["extrapolated"] is None
    assert "none within 1000x of the measured budgets either" in markdown(analysis)


def test_holdout_predicts_the_largest_budget_and_reports_its_error():
    rows = sweep("llama", LLAMA, np.random.default_rng(0), sigma=0.002)
    holdout = only(analyse(rows, resamples=0), "llama")["holdout"]
    assert holdout["status"] == "checked" and holdout["budget_flops"] == BUDGETS[-1]
    assert holdout["measured_loss"] == pytest.approx(optimal_loss(BUDGETS[-1], LLAMA), rel=0.01)
    assert holdout["abs_error"] == pytest.approx(abs(holdout["predicted_loss"] - holdout["measured_loss"]))
    assert holdout["rel_error"] < 0.01
    for r in rows:  # the largest budget off the trend: the check must show it
        r["eval_loss"] += 0.5 if r["budget_flops"] == BUDGETS[-1] else 0.0
    shifted = only(analyse(rows, resamples=0), "llama")["holdout"]
    assert shifted["abs_error"] == pytest.approx(0.5, abs=0.05)
    assert "holdout error" in markdown(analyse(rows, resamples=0))


def test_degenerate_isoflop_curves_are_bounds_not_fits():
    n = [1e6, 2e6, 4e6, 8e6]
    assert isoflop_optimum(n, [3.0, 2.9, 2.95, 3.1]).status == VERTEX
    assert isoflop_optimum(n[:2], [3.0, 2.9]) == isoflop_optimum(n[:2], [3.0, 2.9])
    few = isoflop_optimum(n[:2], [3.0, 2.9])
    assert (few.status, few.size, few.loss, few.bound) == (TOO_FEW_SIZES, 2e6, 2.9, True)
    down = isoflop_optimum(n, [3.0, 3.2, 3.2, 3.0])
    assert down.status == OPENS_DOWNWARD and down.loss == 3.0 and down.bound
    edge = isoflop_optimum(n, [3.4, 3.2, 3.02, 2.86])  # still falling at the largest size
    assert (edge.status, edge.size, edge.loss) == (EDGE, 8e6, 2.86)


def test_degenerate_budgets_are_reported_and_flagged():
    rng = np.random.default_rng(0)
    rows = sweep("llama", LLAMA, rng, budgets=BUDGETS[:3])
    rows += sweep("llama", LLAMA, rng, budgets=BUDGETS[3:4], factors=(1 / 64, 1 / 32, 1 / 16, 1 / 8))  # all too small
    rows += sweep("llama", LLAMA, rng, budgets=BUDGETS[4:], factors=(1 / 2, 2))
    analysis = analyse(rows, resamples=50)
    fam = only(analysis, "llama")
    assert [b["status"] for b in fam["budgets"]] == [VERTEX, VERTEX, VERTEX, EDGE, TOO_FEW_SIZES]
    assert [p["bound"] for p in fam["points"]] == [False, False, False, True, True]
    assert fam["budgets"][3]["optimal_size"] == max(r["size"] for r in fam["budgets"][3]["runs"])
    assert not fam["design"]["meets_isoflop_design"]
    text = markdown(analysis)
    assert "vertex outside measured sizes: the budget's optimum is at the edge" in text
    assert "fewer than 3 sizes: not fitted" in text and "does NOT meet the isoFLOP design" in text
    lone = only(analyse(sweep("llama", LLAMA, rng, budgets=BUDGETS[:1]), resamples=10), "llama")
    assert lone["exponent"] is None and lone["status"].startswith("not fitted: 1 budget")


def test_best_learning_rate_and_left_out_rows():
    rows = []
    for lr, penalty in ((1e-3, 0.2), (3e-3, 0.0), (1e-2, 0.4)):
        rows += [
            {**r, "point": f"{r['point']}-{lr}", "learning_rate": lr, "eval_loss": r["eval_loss"] + penalty}
            for r in sweep("llama", LLAMA, np.random.default_rng(0), sigma=0)
        ]
    rows += [
        {"point": "broken", "status": "failed", "error": "out of memory"},
        {**rows[0], "point": "nan", "eval_loss": float("nan")},
        {**rows[0], "point": "null", "eval_loss": None},
        {**rows[0], "point": "steps-only", "budget_flops": None},
        {**rows[0], "point": "max-steps-first", "flops": rows[0]["budget_flops"] * 0.8, "eval_loss": 0.1},
    ]
    analysis = analyse(rows, resamples=0)
    assert analysis["excluded"] == {"failed": 1, "diverged": 2, "unbudgeted": 1, "short_of_budget": 1}
    fam = only(analysis, "llama")
    assert {r["learning_rate"] for b in fam["budgets"] for r in b["runs"]} == {3e-3}
    assert fam["design"]["learning_rates_per_size"] == [3]
    by_params = only(analyse(rows, size="params", resamples=0), "llama")
    assert by_params["budgets"][0]["runs"][0]["size"] == fam["budgets"][0]["runs"][0]["size"] + 5000


def test_each_context_length_gets_its_own_frontier_and_crossover():
    rng = np.random.default_rng(2)
    rows = sweep("llama", LLAMA, rng, seq_len=32) + sweep("mixer", MIXER_AHEAD, rng, seq_len=32)
    rows += sweep("llama", LLAMA, rng, seq_len=512) + sweep("mixer", MIXER, rng, seq_len=512)
    analysis = analyse(rows, resamples=50)
    assert [c["seq_len"] for c in analysis["contexts"]] == [32, 512]
    short, long = analysis["contexts"]
    assert short["crossovers"][0]["crossover"] == NO_CROSSOVER
    assert isinstance(long["crossovers"][0]["crossover"], dict)
    assert short["summary"].startswith("L 32, lowest optimal loss per budget") and "mixer ahead by" in short["summary"]
    assert "llama ahead by" in long["summary"]


def test_no_usable_rows_is_a_report_that_says_so():
    analysis = analyse([{"point": "a", "status": "failed", "error": "killed"}])
    assert analysis["contexts"] == [] and analysis["excluded"]["failed"] == 1
    assert "No usable rows: every row failed" in markdown(analysis)


def test_results_file_latest_line_per_point_wins(tmp_path):
    first = row("p1", "llama", 1000, 1e15, 5.0)
    lines = [first, {**first, "eval_loss": 4.0}, row("p2", "llama", 2000, 1e15, 4.5)]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + "\n")
    assert [(r["point"], r["eval_loss"]) for r in read_results(path)] == [("p1", 4.0), ("p2", 4.5)]


@pytest.mark.parametrize(
    ("content", "names"),
    [
        (None, "results.jsonl: not found"),
        ("", "results.jsonl: no rows"),
        ('{"point": "a", "status": "failed"}\n{oops\n', "results.jsonl:2: not JSON"),
        ('{"point": "a", "status": "done", "seq_len": 32}\n', "results.jsonl:1: key 'family' must be a string"),
        ('{"point": "a", "status": "running"}\n', "results.jsonl:1: key 'status' must be one of done, failed"),
        (json.dumps(row("a", "mixer", 10, 1e15, -1.0)) + "\n", "results.jsonl:1: key 'eval_loss' must be positive"),
    ],
)
def test_a_bad_results_file_is_one_line(tmp_path, capsys, content, names):
    if content is not None:
        (tmp_path / "results.jsonl").write_text(content)
    assert main(["scaling", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("masked-mixers scaling: error: ") and names in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == (["results.jsonl"] if content is not None else [])


def test_the_command_writes_the_three_files(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = sweep("llama", LLAMA, rng) + sweep("mixer", MIXER, rng)
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / ".masked-mixers.json").write_text(json.dumps({"kind": "sweep", "entries": ["results.jsonl"]}))
    assert main(["scaling", str(tmp_path), "--bootstrap", "50", "--seed", "3"]) == 0
    assert "L 128 llama: b = " in capsys.readouterr().out
    report = json.loads((tmp_path / "scaling.json").read_text())
    fam = report["contexts"][0]["families"]["mixer"]
    assert {"exponent", "exponent_ci", "a", "E", "points", "holdout"} <= fam.keys()
    assert report["bootstrap"] == {"resamples": 50, "seed": 3, "confidence": 0.95}
    assert isinstance(report["contexts"][0]["crossovers"][0]["crossover"]["ci"], list)
    assert "## L = 128" in (tmp_path / "scaling.md").read_text()
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"
    owned = json.loads((tmp_path / ".masked-mixers.json").read_text())
    assert owned == {"kind": "sweep", "entries": ["results.jsonl", "scaling.json", "scaling.md", "scaling.png"]}
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "scaling.md").write_text("my notes")  # not ours: refused, untouched
    assert main(["scaling", str(tmp_path), "--output-dir", str(other), "--bootstrap", "5"]) == 2
    assert "scaling.md: exists and was not written by masked-mixers" in capsys.readouterr().err
    assert (other / "scaling.md").read_text() == "my notes" and not (other / "scaling.json").exists()
