"""compare: config loading, the end-to-end report on a tiny config, and memory-based size matching."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from standin_data import prepare_standin

from masked_mixers.compare import match_memory, measure_training_memory, run_compare
from masked_mixers.compare.config import CompareConfig, MatchingConfig, load_compare_config
from masked_mixers.compare.report import COLUMNS
from masked_mixers.compare.runner import _first_batch
from masked_mixers.core.errors import UserError
from masked_mixers.models import FAMILIES
from masked_mixers.runs.config import ModelSpec, from_dict

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "compare-tiny.yaml"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("compare-*.yaml")))
def test_compare_configs_load(name):
    config = load_compare_config(ROOT / "configs" / name)
    assert config.models and config.size_matching in ("identical", "memory")


def test_compare_config_names_unknown_keys():
    with pytest.raises(UserError, match=r"unknown key 'per_family.mixer.lr'"):
        from_dict(CompareConfig, {"per_family": {"mixer": {"lr": 1e-3}}}, "x.yaml")
    with pytest.raises(UserError, match=r"unknown key 'models\[1\].d_model'"):
        from_dict(CompareConfig, {"models": [{"family": "mixer"}, {"d_model": 3}]}, "x.yaml")


def test_compare_rejects_unknown_per_family_key(tmp_path):
    config = load_compare_config(TINY, ["per_family.mixr.learning_rate=0.1"])
    with pytest.raises(UserError, match="per_family: key 'mixr'"):
        run_compare(config, tmp_path, prepare=prepare_standin, progress=False)


def test_compare_tiny_writes_report_plots_and_results(tmp_path):
    config = load_compare_config(TINY)
    # a third model at another seq_len: data is prepared once per distinct L
    config.models.append(ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=1, seq_len=16, name="mixer-L16"))
    calls = []

    def prepare(data, seq_len):
        calls.append(seq_len)
        return prepare_standin(data, seq_len, n_train=64, n_eval=16)

    result = run_compare(config, tmp_path, prepare=prepare, progress=False)
    assert sorted(calls) == [16, 32]
    for name in ("report.md", "results.json", "eval_loss_vs_time.png", "eval_loss_vs_tokens.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "eval_loss_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["label"] for r in results["models"]] == ["mixer-flat-d32-n2-L32", "llama-d32-n2-L32", "mixer-L16"]
    for row in results["models"]:
        for key in COLUMNS:
            assert row[key] is not None and (isinstance(row[key], str) or math.isfinite(row[key])), key
        assert row["steps"] == 4 and row["tokens_seen"] == 4 * 4 * row["seq_len"]
        assert row["eval_curve"] and row["eval_curve"][-1]["eval_loss"] == pytest.approx(row["eval_loss"], rel=1e-3)
        assert len(row["samples"]) == 2 and all(s["greedy"] is not None for s in row["samples"])
    assert results["models"][0]["learning_rate"] == 0.005 and results["models"][1]["learning_rate"] == 0.002
    assert set(results["environment"]) >= {"git_revision", "torch", "transformers", "device", "dtype"}
    report = (tmp_path / "report.md").read_text()
    assert "| mixer-flat-d32-n2-L32 | 4 | 51,840 |" in report and "eval_loss_vs_tokens.png" in report
    assert "Budget: steps (max_steps=4)" in report and "mixer-L16 stopped by max_steps after 4 steps" in report
    assert all(r["cpu_seconds"] > 0 and r["flops"] == 4 * r["flops_per_step"] for r in results["models"])
    assert result.report == tmp_path / "report.md"


def test_memory_matching_within_tolerance():
    data = prepare_standin(None, 32, n_train=8, n_eval=4)
    batch = _first_batch(data, 4)
    vocab = len(data.tokenizer)
    measure = lambda spec: measure_training_memory(spec, batch, vocab, steps=2)  # noqa: E731
    reference = ModelSpec(family="llama", hidden_size=64, num_hidden_layers=2, seq_len=32, num_heads=2)
    mixer = ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=2, seq_len=32)
    target = measure(reference)
    assert measure(reference) == target  # repeatable, so a match means something
    match = match_memory(mixer, target, measure, MatchingConfig(multiple_of=8, tolerance=0.15))
    assert match.spec.hidden_size != mixer.hidden_size  # it searched
    # measured again, independently of the search
    assert abs(measure(match.spec) - target) / target <= 0.15
    # a bigger model really does use more memory (the search relies on it)
    assert measure(replace(match.spec, hidden_size=match.spec.hidden_size * 2)) > 1.3 * target


def test_memory_matching_fails_loudly_when_out_of_reach():
    data = prepare_standin(None, 32, n_train=8, n_eval=4)
    batch = _first_batch(data, 4)
    measure = lambda spec: measure_training_memory(spec, batch, len(data.tokenizer), steps=1)  # noqa: E731
    mixer = ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=2, seq_len=32)
    with pytest.raises(UserError, match="no hidden_size"):
        match_memory(mixer, 10, measure, MatchingConfig(multiple_of=8, max_hidden_size=64))


def test_compare_memory_mode_resizes_and_reports_the_match(tmp_path):
    overrides = ["size_matching=memory", "matching.multiple_of=8", "train.max_steps=2", "train.eval_steps=0"]
    config = load_compare_config(TINY, overrides)
    prepare = lambda data, seq_len: prepare_standin(data, seq_len, n_train=32, n_eval=8)  # noqa: E731
    run_compare(config, tmp_path, prepare=prepare, progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    (match,) = results["matches"]
    assert match["reference"] == "llama-d32-n2-L32" and match["relative_gap"] <= 0.15
    assert results["models"][0]["hidden_size"] == match["hidden_size"] != 32
    assert "Size matching" in (tmp_path / "report.md").read_text()


def test_every_language_model_family_trains_and_compares_on_real_data(tmp_path, tiny_data_config):
    """Issue 8's models (and the other LM families) go through train + compare like the mixer."""
    from masked_mixers.data import prepare_data

    small = dict(hidden_size=32, num_hidden_layers=2, seq_len=64, num_heads=2)
    families = ["linear_mixer", "transfixer", "bidirectional_mixer", "bidirectional_llama", "llama_ablated", "gpt2"]
    config = from_dict(
        CompareConfig,
        {
            "models": [{"family": f, **{k: v for k, v in small.items() if k in FAMILIES[f].takes}} for f in families]
            + [{"family": "mixer", "mixer_type": t, **small} for t in ("expanded", "multihead")],
            "train": {
                "max_steps": 3,
                "batch_size": 4,
                "warmup_steps": 0,
                "eval_steps": 0,
                "max_eval_batches": 2,
                "save_steps": 0,
                "logging_steps": 1,
            },
            "report": {"prompts": ["once upon a time"], "max_new_tokens": 4},
        },
    )
    config.models[4].use_layer_norm = False  # an ablated Llama
    result = run_compare(
        config,
        tmp_path,
        prepare=lambda data, seq_len: prepare_data(tiny_data_config, seq_len, progress=False),
        progress=False,
    )
    rows = {r["label"]: r for r in json.loads((tmp_path / "results.json").read_text())["models"]}
    assert len(rows) == len(config.models) == len(result.rows)
    for label, row in rows.items():
        assert math.isfinite(row["eval_loss"]) and 0 < row["eval_loss"] < 10, (label, row["eval_loss"])
        assert bool(row["samples"]) == (not label.startswith("bidirectional")), label


# --- reproduce's F4: the learning-rate sweep's choice and the gap's trend ---------------------------------------


def test_f4_sweep_picks_the_lowest_held_out_loss_and_skips_diverged_runs():
    from masked_mixers.reproduce.f4_clm import choose_rate

    assert choose_rate({1e-3: 3.9, 2e-3: 3.7, 5e-3: 3.8, 1e-2: None}) == 2e-3
    assert choose_rate({1e-3: 3.9, 2e-3: float("nan"), 5e-3: 3.85, 1e-2: 4.5}) == 5e-3
    assert choose_rate({5e-3: 3.7, 1e-3: 3.7}) == 1e-3  # a tie keeps the lower rate
    assert choose_rate({1e-3: None, 2e-3: float("inf")}) is None


def test_f4_gap_at_budget_fractions_comes_from_each_models_own_eval_curve():
    from masked_mixers.reproduce.f4_clm import gaps_at_fractions, loss_at

    mixer = [{"step": s, "eval_loss": loss} for s, loss in ((100, 5.0), (200, 4.4), (300, 4.2), (400, 4.0))]
    llama = [{"step": s, "eval_loss": loss} for s, loss in ((50, 4.0), (100, 4.0), (150, 4.0), (200, 3.2))]
    assert loss_at(mixer, 250) == pytest.approx(4.3) and loss_at(mixer, 50) is None and loss_at(mixer, 401) is None
    gaps = gaps_at_fractions(mixer, llama)  # 25% of 400 vs 25% of 200, ... 100% of each
    assert gaps == pytest.approx([5.0 / 4.0 - 1, 4.4 / 4.0 - 1, 4.2 / 4.0 - 1, 4.0 / 3.2 - 1])
    assert gaps_at_fractions(mixer, llama, (0.1,)) == [None]  # before the first evaluation: no number
    assert gaps_at_fractions(mixer, [], (1.0,)) == [None]


def test_per_family_step_limits_and_warmup_ratio_reach_each_models_train_config(tmp_path):
    from masked_mixers.compare.config import TrainOverrides
    from masked_mixers.compare.report import _budget, budget_sentence
    from masked_mixers.compare.runner import _train_config

    config = load_compare_config(TINY)
    config.per_family = {"mixer": TrainOverrides(max_steps=40, eval_steps=10, warmup_ratio=0.05)}
    mixer, llama = config.models[0], config.models[1]
    got = _train_config(config, mixer, mixer.label, tmp_path)
    assert (got.max_steps, got.eval_steps, got.warmup_ratio) == (40, 10, 0.05)
    assert _train_config(config, llama, llama.label, tmp_path).max_steps == config.train.max_steps
    budget = _budget(config)  # the report does not claim equal tokens when step limits differ per model
    assert budget["per_family_max_steps"] == {"mixer": 40} and budget["kind"] == "max_steps"
    rows = [{"label": "mixer", "steps": 40, "stopped_by": "max_steps"}]
    assert budget_sentence(budget, rows).startswith("Budget: steps set per model (per_family max_steps: mixer 40;")
    assert "same training tokens" in budget_sentence({**budget, "per_family_max_steps": None}, rows)


def test_bad_per_family_warmup_ratio_or_step_limit_is_one_line(tmp_path):
    for key, value in (("warmup_ratio", 1.5), ("max_steps", 0)):
        path = tmp_path / f"{key}.yaml"
        path.write_text(TINY.read_text() + f"\nper_family:\n  mixer: {{{key}: {value}}}\n")
        with pytest.raises(UserError, match=key):
            load_compare_config(path)
