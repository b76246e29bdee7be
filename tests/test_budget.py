"""Training budgets: train.max_flops as a per-model step limit, and the CPU/GPU time and FLOPs a run records."""

import json
from dataclasses import replace

import pytest
import torch
from standin_data import prepare_standin
from test_compare import TINY
from test_training import StopAt

from masked_mixers.compare import run_compare
from masked_mixers.compare.config import load_compare_config
from masked_mixers.core.errors import UserError
from masked_mixers.models import FAMILIES
from masked_mixers.runs.card import model_card
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig, from_dict
from masked_mixers.training.budget import StepLimit, step_limit, training_flops_per_step
from masked_mixers.training.train import train


def spec(family):
    return ModelSpec(family=family, hidden_size=32, num_hidden_layers=2, seq_len=64, num_heads=2)


def tiny_run(family, output_dir, **train_overrides):
    options = dict(
        output_dir=str(output_dir),
        max_steps=1000,
        batch_size=4,
        eval_steps=0,
        save_steps=0,
        logging_steps=2,
        warmup_steps=1,
    )
    return RunConfig(model=spec(family), train=TrainConfig(**{**options, **train_overrides}))


def per_step(family, vocab, **train):
    return training_flops_per_step(spec(family), TrainConfig(batch_size=4, **train), vocab)


def test_per_step_count_is_benchs_training_count_times_the_tokens_of_a_step():
    count = FAMILIES["llama"].flops(spec("llama"), 300, 64)
    assert count.training == 3 * count.forward
    assert per_step("llama", 300) == count.training * 4 * 64
    assert per_step("llama", 300, gradient_accumulation_steps=3) == 3 * per_step("llama", 300)
    assert training_flops_per_step(spec("llama"), TrainConfig(batch_size=4), 300, world_size=2) == 2 * per_step(
        "llama", 300
    )
    assert per_step("llama", 300, objective="mtp") is None  # n passes or heads: not what the count covers


def test_step_limit_is_the_whole_steps_the_budget_pays_for():
    train_cfg = TrainConfig(max_steps=1000, max_flops=1e10)
    mixer, llama = per_step("mixer", 300), per_step("llama", 300)
    assert mixer != llama
    for flops in (mixer, llama):
        limit = step_limit(spec("mixer"), train_cfg, flops)
        assert limit.stopped_by == "max_flops" and limit.max_steps * flops <= 1e10 < (limit.max_steps + 1) * flops
    assert step_limit(spec("mixer"), replace(train_cfg, max_steps=3), mixer) == StepLimit(3, "max_steps")
    assert step_limit(spec("mixer"), replace(train_cfg, max_flops=None), mixer) == StepLimit(1000, "max_steps")
    with pytest.raises(UserError, match=r"train.max_flops: 1e\+03 is less than one training step of family 'mixer'"):
        step_limit(spec("mixer"), replace(train_cfg, max_flops=1e3), mixer)
    with pytest.raises(UserError, match=r"train.max_flops: objective 'mtp' is not counted"):
        step_limit(spec("mixer"), replace(train_cfg, objective="mtp"), None)


def test_an_uncounted_objective_with_max_flops_is_refused_before_data_is_read(tmp_path):
    run = tiny_run("mixer", tmp_path / "out", max_flops=1e12, objective="mtp")
    with pytest.raises(UserError, match=r"^train.max_flops: objective 'mtp' is not counted"):
        train(run)  # no prepared data given: refused before preparing any
    assert not (tmp_path / "out" / "run.yaml").exists()


@pytest.mark.parametrize("value", [0, -1.0, ".inf", ".nan"])
def test_bad_max_flops_is_one_line_naming_the_key(value):
    import yaml

    with pytest.raises(UserError, match=r"x.yaml: key 'train.max_flops'") as err:
        from_dict(
            RunConfig, {"model": {"family": "mixer"}, "train": {"max_flops": yaml.safe_load(str(value))}}, "x.yaml"
        )
    assert "\n" not in str(err.value)


def test_max_flops_gives_each_family_the_steps_its_count_implies(tiny_prepared, tmp_path):
    budget = 60 * per_step("mixer", len(tiny_prepared.tokenizer))
    results = {f: train(tiny_run(f, tmp_path / f, max_flops=budget), tiny_prepared) for f in ("mixer", "llama")}
    steps = {f: int(budget // r.flops_per_step) for f, r in results.items()}
    assert steps["mixer"] == 60 and steps["llama"] < 60  # Llama's step costs more at the same d, depth and L
    for family, result in results.items():
        assert result.steps == steps[family] and result.stopped_by == "max_flops"
        assert (
            result.flops == result.steps * result.flops_per_step
            and budget - result.flops_per_step < result.flops <= budget
        )
        assert result.cpu_seconds > 0 and result.train_seconds > 0
        assert (result.gpu_seconds is None) == (not torch.cuda.is_available())
        summary = json.loads((tmp_path / family / "train_summary.json").read_text())
        assert summary["stopped_by"] == "max_flops" and summary["flops"] == result.flops and summary["cpu_seconds"] > 0
        records = [json.loads(line) for line in (tmp_path / family / "metrics.jsonl").read_text().splitlines()]
        assert records and all(r["flops"] == r["step"] * result.flops_per_step and r["cpu_s"] >= 0 for r in records)
        assert [r["cpu_s"] for r in records] == sorted(r["cpu_s"] for r in records)
        rates = [r["learning_rate"] for r in records if "learning_rate" in r]
        assert (
            rates[-1] < 0.1 * rates[len(rates) // 2]
        )  # the linear schedule decays over the flop-derived steps, not max_steps
        card = model_card(tmp_path / family, "me/tiny")  # the model card states the budget and the compute spent
        assert f"steps: {result.steps} (stopped by max_flops)" in card and f"max_flops {budget}" in card
        assert f"- compute: {result.flops:.3g} training FLOPs" in card and "CPU time" in card


def test_a_flops_budgeted_run_resumes_to_the_same_weights_and_stops_at_its_limit(tiny_prepared, tmp_path):
    budget = 10.5 * per_step("mixer", len(tiny_prepared.tokenizer))
    run = lambda name: tiny_run("mixer", tmp_path / name, max_flops=budget, save_steps=4, weight_decay=0.1)  # noqa: E731
    straight = train(run("straight"), tiny_prepared)
    first = train(run("resumed"), tiny_prepared, callbacks=[StopAt(4)])
    assert first.steps == 4 and first.stopped_by == "max_steps"  # cut short: not finished
    resumed = train(run("resumed"), tiny_prepared)
    assert resumed.steps == straight.steps == 10 and resumed.stopped_by == "max_flops" and not resumed.already_finished
    assert resumed.cpu_seconds >= first.cpu_seconds and resumed.flops == straight.flops
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = train(run("resumed"), tiny_prepared)
    assert again.already_finished and again.stopped_by == "max_flops" and again.steps == 10
    with pytest.raises(UserError, match=r"train.max_flops changed"):
        train(replace(run("resumed"), train=replace(run("resumed").train, max_flops=2 * budget)), tiny_prepared)


def test_compare_with_a_flops_budget_reports_steps_flops_and_what_stopped_each_row(tmp_path):
    config = load_compare_config(TINY, ["train.max_steps=1000", "train.max_flops=2.0e+8"])
    result = run_compare(
        config,
        tmp_path,
        prepare=lambda data, seq_len: prepare_standin(data, seq_len, n_train=64, n_eval=16),
        progress=False,
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["budget"]["max_flops"] == 2e8 and results["budget"]["kind"] == "max_flops"
    mixer, llama = results["models"]
    assert mixer["steps"] != llama["steps"]
    for row in results["models"]:
        assert row["stopped_by"] == "max_flops" and row["cpu_seconds"] > 0
        assert 2e8 - row["flops"] / row["steps"] < row["flops"] <= 2e8
    report = result.report.read_text()
    assert "training FLOPs (max_flops=2e+08)" in report and "stopped by max_flops" in report
    assert f"| {mixer['flops']:.4g} |" in report


def test_train_command_with_max_flops_stops_there_and_a_rerun_is_finished(tmp_path, capsys):
    """`masked-mixers train` end to end: the step limit, the printed reason, a finished rerun, and a
    run killed after its last checkpoint finished from it (the flop-derived limit, not max_steps)."""
    from faults import tiny_config

    from masked_mixers.cli import main
    from masked_mixers.runs.config import load_run_config

    config = tiny_config(tmp_path, max_steps=1000, save_steps=3)
    run = load_run_config(config)
    budget = 6.5 * training_flops_per_step(
        run.model, run.train, run.data.vocab_size
    )  # the tokenizer may come out smaller: >= 6 steps
    args = ["train", str(config), "--set", f"train.max_flops={budget}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    steps = json.loads((tmp_path / "out" / "train_summary.json").read_text())["steps"]
    assert 6 <= steps < 1000 and f"{steps} steps" in out and "stopped by max_flops" in out and "CPU time" in out
    assert main(args) == 0 and f"already finished ({steps} steps" in capsys.readouterr().out
    assert (tmp_path / "out" / f"checkpoint-{steps}").is_dir()  # the resume below restores it: no step past the limit
    for name in ("train_summary.json", "model.safetensors", "config.json"):  # as if killed during the final save
        (tmp_path / "out" / name).unlink()
    result = train(load_run_config(config, [f"train.max_flops={budget}"]))
    assert result.steps == steps and result.stopped_by == "max_flops" and not result.already_finished


def test_clocks_continue_from_a_resume_and_count_this_process_cpu_time():
    from masked_mixers.core.clocks import TrainingClocks

    clocks = TrainingClocks()
    clocks.start(wall=10.0, cpu=4.0, gpu=2.0)
    clocks.step_begin()
    sum(i * i for i in range(300_000))  # CPU work in this process
    clocks.step_end()
    assert clocks.wall() > 10.0 and clocks.cpu() > 4.0
    assert clocks.gpu() is None if not torch.cuda.is_available() else clocks.gpu() >= 2.0


def test_a_compute_time_budget_stops_the_run_by_the_cpu_time_of_its_steps(tiny_prepared, tmp_path, monkeypatch):
    """A fake CPU clock that advances one second per reading: every optimizer step reads it twice
    (its start and end), so each step costs exactly 1 s of step CPU time whatever the machine does."""
    import itertools

    from masked_mixers.core import clocks

    if torch.cuda.is_available():
        pytest.skip("on CUDA the compute clock is GPU time")
    monkeypatch.setattr(clocks, "_process_time", itertools.count(0.0, 1.0).__next__)
    run = tiny_run("mixer", tmp_path / "cpu", max_compute_seconds=5.5, logging_steps=1)
    result = train(run, tiny_prepared)
    assert result.steps == 6 and result.stopped_by == "max_compute_seconds" and result.compute_seconds == 6.0
    records = [json.loads(line) for line in (tmp_path / "cpu" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step_cpu_s"] for r in records if "loss" in r] == [float(r["step"]) for r in records if "loss" in r]
    again = train(run, tiny_prepared)  # spent and not raised: finished
    assert again.already_finished and again.stopped_by == "max_compute_seconds"


def test_warmup_ratio_is_a_share_of_each_models_own_steps(tiny_prepared, tmp_path):
    from masked_mixers.training.budget import warmup_steps

    assert warmup_steps(TrainConfig(warmup_steps=7), 100) == 7  # no ratio: warmup_steps as written
    assert (
        warmup_steps(TrainConfig(warmup_ratio=0.05), 382) == 19
        and warmup_steps(TrainConfig(warmup_ratio=0.05), 10) == 1
    )
    assert warmup_steps(TrainConfig(warmup_ratio=0.0, warmup_steps=9), 100) == 0
    budget, steps = 24 * per_step("mixer", len(tiny_prepared.tokenizer)), {}
    for family in ("mixer", "llama"):
        run = tiny_run(
            family, tmp_path / family, max_flops=budget, warmup_ratio=0.25, warmup_steps=500, logging_steps=1
        )
        result = train(run, tiny_prepared)
        assert result.stopped_by == "max_flops"
        rates = {r["step"]: r["learning_rate"] for r in result.history if "learning_rate" in r}
        peak = max(rates, key=rates.get)  # the rate logged at step s is the one step s used: lambda(s - 1)
        assert peak == round(0.25 * result.steps) + 1
        steps[family] = result.steps
    assert steps["llama"] < steps["mixer"] == 24  # so their warmups differ
