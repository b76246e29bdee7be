"""Training end to end on real text: learning, resume exactness, budgets, the NaN guard."""

import json
import math

import pytest
import torch
from transformers import TrainerCallback

from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
from masked_mixers.runs.factory import build_model
from masked_mixers.training.train import train


def tiny_run(family, output_dir, **train_overrides):
    model = ModelSpec(family=family, hidden_size=64, num_hidden_layers=2, seq_len=64, num_heads=4)
    options = dict(
        output_dir=str(output_dir),
        max_steps=24,
        batch_size=8,
        eval_steps=0,
        save_steps=0,
        logging_steps=4,
        warmup_steps=2,
    )
    options.update(train_overrides)
    return RunConfig(model=model, train=TrainConfig(**options))


class StopAt(TrainerCallback):
    """Interrupt a run after `step` optimizer steps (as a crash would, but after a checkpoint)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


@pytest.mark.parametrize("family, lr", [("mixer", 5e-3), ("llama", 2e-3)])
def test_learns_well_below_unigram_baseline(family, lr, tiny_prepared, tmp_path):
    baseline = tiny_prepared.stats["unigram_baseline"]
    run = tiny_run(family, tmp_path, max_steps=300, batch_size=16, learning_rate=lr, warmup_steps=20, eval_steps=150)
    result = train(run, tiny_prepared)
    loss = result.eval_metrics["loss"]
    print(f"{family}: eval loss {loss:.3f} vs unigram baseline {baseline:.3f} after {result.steps} steps")
    assert loss < baseline - 0.75, (loss, baseline)
    assert result.eval_metrics["bits_per_byte"] > 0 and math.isfinite(result.eval_metrics["perplexity"])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in records) and all(
        {"step", "elapsed_s", "tokens_seen"} <= r.keys() for r in records
    )
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "tokenizer.json").is_file()


class CountEvaluations(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_evaluate(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_the_final_model_is_evaluated_once_and_logged_as_the_last_eval(tiny_prepared, tmp_path):
    counter = CountEvaluations()
    result = train(tiny_run("mixer", tmp_path, max_steps=12, eval_steps=6), tiny_prepared, callbacks=[counter])
    assert counter.steps == [6]  # the Trainer's evaluation at step 12 is skipped: train() evaluates the final model
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    assert evals[-1]["eval_loss"] == pytest.approx(result.eval_metrics["loss"])
    assert evals[-1]["eval_bits_per_byte"] == pytest.approx(result.eval_metrics["bits_per_byte"])


@pytest.mark.parametrize("family", ["mixer", "llama"])
def test_interrupted_run_resumes_to_the_same_weights(family, tiny_prepared, tmp_path):
    options = dict(save_steps=8, weight_decay=0.1)
    straight = train(tiny_run(family, tmp_path / "straight", **options), tiny_prepared)
    first = train(tiny_run(family, tmp_path / "resumed", **options), tiny_prepared, callbacks=[StopAt(12)])
    assert first.steps == 12
    resumed = train(tiny_run(family, tmp_path / "resumed", **options), tiny_prepared)
    assert resumed.steps == straight.steps == 24
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_wall_clock_budget_stops_and_saves(tiny_prepared, tmp_path):
    result = train(tiny_run("mixer", tmp_path, max_steps=10_000, max_seconds=1.0), tiny_prepared)
    assert result.stopped_by == "max_seconds" and 0 < result.steps < 10_000
    assert (tmp_path / f"checkpoint-{result.steps}").is_dir()


class Poison(TrainerCallback):
    def __init__(self, model, step):
        self.model, self.step = model, step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                self.model.lm_head.weight.fill_(float("nan"))


def test_nonfinite_loss_stops_naming_step_and_checkpoint(tiny_prepared, tmp_path):
    run = tiny_run("mixer", tmp_path, save_steps=4)
    model, _ = build_model(run.model, len(tiny_prepared.tokenizer))
    with pytest.raises(UserError, match=r"step 7: loss is nan; last good checkpoint: .*checkpoint-4"):
        train(run, tiny_prepared, model=model, callbacks=[Poison(model, 6)])


def test_eval_command_on_a_trained_model_dir(tiny_prepared, tmp_path, capsys):
    from conftest import VALID

    from masked_mixers.cli import main

    train(tiny_run("mixer", tmp_path, max_steps=4), tiny_prepared)
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(tmp_path),
                "--data",
                str(VALID),
                "--max-documents",
                "16",
                "--output",
                str(tmp_path / "eval.json"),
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["tokens"] > 0 and math.isfinite(metrics["loss"]) and metrics["bits_per_byte"] > 0
