"""The autoencoding task end to end: train() and `train` score reconstruction (unshifted), compare
reports reconstruction metrics and reconstructions, and a comparison never mixes tasks."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from standin_data import prepare_standin
from transformers import LlamaForCausalLM

from masked_mixers.cli import main
from masked_mixers.compare import run_compare
from masked_mixers.compare.config import load_compare_config
from masked_mixers.compare.matching import _step
from masked_mixers.compare.report import RECONSTRUCTION_COLUMNS
from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
from masked_mixers.runs.factory import FAMILIES, family_task
from masked_mixers.training.tasks import AUTOENCODE, CAUSAL_LM, model_task
from masked_mixers.training.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY_AE = ROOT / "configs" / "compare-autoencoder-tiny.yaml"


def test_task_follows_the_family():
    tasks = {family: family_task(ModelSpec(family=family)) for family in FAMILIES}
    autoencoders = {"mixer_autoencoder", "llama_autoencoder"}
    assert tasks == {family: AUTOENCODE if family in autoencoders else CAUSAL_LM for family in FAMILIES}
    assert {"mixer", "llama", "llama_ablated"} <= tasks.keys()
    assert model_task(LlamaForCausalLM) == CAUSAL_LM  # no flag: a language model
    with pytest.raises(UserError, match=r"models\[3\]\.family: unknown family 'mixr'"):
        family_task(ModelSpec(family="mixr"), "models[3].family")


def _unshifted_reference(model, dataset):
    """Reconstruction loss and token accuracy computed here, independently of the package."""
    model.eval()
    rows = {
        k: torch.as_tensor(v) for k, v in dataset[:].items() if k != "num_bytes"
    }  # a compact store expands the slice
    with torch.no_grad():
        logits = model(input_ids=rows["input_ids"], attention_mask=rows["attention_mask"]).logits  # (n, L, vocab)
    labels = rows["labels"]
    scored = labels != -100
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    accuracy = (logits.argmax(-1) == labels)[scored].float().mean()
    return float(loss), float(accuracy)


def test_train_scores_autoencoder_by_reconstruction(tiny_prepared, tmp_path):
    spec = ModelSpec(family="mixer_autoencoder", hidden_size=32, num_hidden_layers=1, seq_len=64)
    options = dict(
        max_steps=30,
        batch_size=8,
        learning_rate=5e-3,
        warmup_steps=2,
        eval_steps=15,
        max_eval_batches=None,
        save_steps=0,
        logging_steps=5,
    )
    result = train(RunConfig(model=spec, train=TrainConfig(output_dir=str(tmp_path), **options)), tiny_prepared)
    ev = result.eval_metrics
    assert set(ev) == {"loss", "token_accuracy", "exact_match"}  # no perplexity/bits per byte: not a next-token loss
    loss, accuracy = _unshifted_reference(result.model, tiny_prepared.eval)
    assert ev["loss"] == pytest.approx(loss, rel=1e-4) and ev["token_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert 0 <= ev["exact_match"] <= ev["token_accuracy"] < 1
    # evaluations during training report the same task: the Trainer's last eval is the same model on the same examples
    evals = [r for r in result.history if "eval_loss" in r]
    assert [r["step"] for r in evals] == [15, 30]
    assert evals[-1]["eval_token_accuracy"] == pytest.approx(accuracy, abs=1e-6) and "eval_exact_match" in evals[-1]
    assert evals[-1]["eval_loss"] == pytest.approx(loss, rel=0.05)  # mean of batch means vs token-weighted mean
    first_loss = next(r["loss"] for r in result.history if "loss" in r)
    assert ev["loss"] < first_loss - 0.5  # it learned something
    assert json.loads((tmp_path / "train_summary.json").read_text())["task"] == AUTOENCODE


def test_train_command_prints_reconstruction_metrics(tiny_data_config, tiny_prepared, tmp_path, capsys):
    config = tmp_path / "ae.yaml"
    run = {
        "model": {
            "family": "llama_autoencoder",
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "seq_len": 64,
            "num_heads": 2,
        },
        "data": dataclasses.asdict(tiny_data_config),  # the prepared slice's cache is reused
        "train": {
            "output_dir": str(tmp_path / "out"),
            "max_steps": 3,
            "batch_size": 4,
            "eval_steps": 0,
            "max_eval_batches": 2,
            "save_steps": 0,
        },
    }
    config.write_text(yaml.safe_dump(run))
    assert main(["train", str(config)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("llama_autoencoder-d32-n1-L64: 3 steps") and "eval reconstruction loss" in line
    assert "token accuracy" in line and "exact match" in line and "ppl" not in line


def test_compare_autoencoders_reports_reconstruction(tmp_path):
    config = load_compare_config(TINY_AE)
    prepared = {}

    def prepare(data, seq_len):
        prepared[seq_len] = prepare_standin(data, seq_len, n_train=64, n_eval=16)
        return prepared[seq_len]

    run_compare(config, tmp_path, prepare=prepare, progress=False)
    for name in ("report.md", "results.json", "eval_loss_vs_time.png", "eval_loss_vs_tokens.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "eval_loss_vs_tokens.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["task"] == AUTOENCODE
    first_input = prepared[32].tokenizer.decode(
        [t for t in prepared[32].eval[0]["labels"] if t != -100], skip_special_tokens=True
    )
    for row in results["models"]:
        for key in RECONSTRUCTION_COLUMNS:
            assert row[key] is not None and (isinstance(row[key], str) or math.isfinite(row[key])), key
        assert row["perplexity"] is None and row["bits_per_byte"] is None and "samples" not in row
        assert row["steps"] == 4 and row["eval_curve"][-1]["eval_loss"] == pytest.approx(row["eval_loss"], rel=1e-3)
        assert len(row["reconstructions"]) == 2 and row["reconstructions"][0]["input"] == first_input
        assert all(
            0 <= r["token_accuracy"] <= 1 and isinstance(r["reconstruction"], str) for r in row["reconstructions"]
        )
    report = (tmp_path / "report.md").read_text()
    assert "| reconstruction loss | token accuracy | exact match |" in report
    assert "## Reconstructions" in report and "## Samples" not in report and "autoencoding" in report.splitlines()[0]


def test_compare_with_mixed_tasks_fails_before_any_work(tmp_path, capsys):
    config = load_compare_config(TINY_AE)
    config.models[1] = ModelSpec(family="llama", hidden_size=32, num_hidden_layers=1, seq_len=32, num_heads=2)

    def prepare(data, seq_len):
        raise AssertionError("data was prepared for a config that cannot run")

    message = (
        r"models\[1\]\.family: 'llama' has task causal_lm but models\[0\] \('mixer_autoencoder'\) has task autoencode"
    )
    with pytest.raises(UserError, match=message):
        run_compare(config, tmp_path, prepare=prepare, progress=False)
    raw = yaml.safe_load(TINY_AE.read_text())
    raw["models"][0]["family"] = "mixer"
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump(raw))
    assert main(["compare", str(tmp_path / "mixed.yaml"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "models[1].family: 'llama_autoencoder' has task autoencode" in err


def test_memory_matching_steps_llama_autoencoders_by_heads():
    assert _step(ModelSpec(family="llama_autoencoder", num_heads=3), 32) == 96
    assert _step(ModelSpec(family="mixer_autoencoder", num_heads=3), 32) == 32
