"""Training objectives (masked_mixers/objectives/): multi-token prediction and one-step completion.

Models are tiny (d 32, 2-3 layers, L 16, vocab 64) and built through the registry, so every causal
family is checked by declaration, as in test_contract.py.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from masked_mixers.core.errors import UserError
from masked_mixers.models import CAUSAL_LM, FAMILIES
from masked_mixers.objectives import compute_loss, prepare_model, restore, speculative_greedy
from masked_mixers.objectives.completion import completion_forward, one_step_ids
from masked_mixers.objectives.mtp import mtp_forward
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
from masked_mixers.runs.factory import build_model

VOCAB, D, L, HEADS = 64, 32, 16, 4
CAUSAL = [
    n
    for n, f in FAMILIES.items()
    if f.task == CAUSAL_LM and f.capabilities.generates and not f.capabilities.predicts_in_place
]
COMPLETING = [n for n, f in FAMILIES.items() if f.capabilities.one_step_completion]


pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, layers: int = 2, seed: int = 0, **train):
    """A tiny model of family `name`, prepared for the objective in `train` (TrainConfig fields)."""
    family = FAMILIES[name]
    sizes = dict(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=layers, seq_len=L, num_heads=HEADS)
    torch.manual_seed(seed)
    model, _ = build_model(ModelSpec(family=name, **{k: v for k, v in sizes.items() if k in family.takes}))
    if train:
        prepare_model(model, TrainConfig(**train))
    return model.eval()


def batch(seed: int = 0, b: int = 2) -> dict:
    ids = torch.randint(3, VOCAB, (b, L), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def perturbed(ids: torch.Tensor, col: int) -> torch.Tensor:
    changed = ids.clone()
    changed[:, col] = 3 + (changed[:, col] - 3 + 1) % (VOCAB - 3)
    return changed


def randomize_heads(model) -> None:
    """Zero-initialised heads equal the main head; give them weights of their own so tests can tell them apart."""
    with torch.no_grad():
        for p in model.mtp_heads.parameters():
            p.normal_(0, 0.3)


# ---------------------------------------------------------------------------------------------
# Multi-token prediction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["recurrent", "heads"])
@pytest.mark.parametrize("name", CAUSAL)
def test_mtp_with_one_token_is_the_clm_loss_exactly(name, mode):
    model = build(name, objective="mtp", mtp_tokens=1, mtp_mode=mode).train()
    inputs = batch()
    loss, _ = compute_loss(model, inputs)
    assert torch.equal(loss, model(**inputs).loss)


@pytest.mark.parametrize("name", ["mixer", "llama"])
def test_mtp_recurrent_two_tokens_is_the_hand_computed_sum(name):
    model = build(name, objective="mtp", mtp_tokens=2, mtp_mode="recurrent").train()
    inputs = batch()
    ids, labels = inputs["input_ids"], inputs["labels"]
    loss, _ = compute_loss(model, inputs)
    with torch.no_grad():
        logits0 = model(input_ids=ids).logits
        logits1 = model(input_ids=logits0.argmax(-1)).logits  # the second pass reads the first pass's greedy tokens
    expected = 0.0
    for lg, ahead in ((logits0, 1), (logits1, 2)):
        rows = [F.cross_entropy(lg[r, : L - ahead], labels[r, ahead:], reduction="sum") for r in range(ids.shape[0])]
        expected += sum(rows) / (ids.shape[0] * (L - ahead))
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mixer", "llama"])
def test_mtp_heads_two_tokens_is_the_hand_computed_sum(name):
    model = build(name, objective="mtp", mtp_tokens=2, mtp_mode="heads").train()
    randomize_heads(model)
    inputs = batch()
    ids, labels = inputs["input_ids"], inputs["labels"]
    loss, _ = compute_loss(model, inputs)
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state  # what the LM head reads (after the final norm)
        block = model.mtp_heads.blocks[0]
        logits0 = hidden @ model.lm_head.weight.T
        logits1 = (hidden + F.silu(hidden @ block.weight.T + block.bias)) @ model.lm_head.weight.T
    expected = F.cross_entropy(logits0[:, :-1].flatten(0, 1), labels[:, 1:].flatten()) + F.cross_entropy(
        logits1[:, :-2].flatten(0, 1), labels[:, 2:].flatten()
    )
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-5)


def test_mtp_loss_trains_the_extra_heads_and_only_pass_zero_feeds_labels():
    model = build("mixer", objective="mtp", mtp_tokens=3, mtp_mode="heads").train()
    loss, _ = compute_loss(model, batch())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mtp_heads.parameters())


@pytest.mark.parametrize("mode", ["recurrent", "heads"])
@pytest.mark.parametrize("name", CAUSAL)
def test_mtp_every_pass_is_causal(name, mode):
    """Changing token j moves no pass's/head's prediction at a position before j, and does move position j."""
    model = build(name, objective="mtp", mtp_tokens=3, mtp_mode=mode)
    if mode == "heads":
        randomize_heads(model)
    ids = batch()["input_ids"]
    reached = [False] * 3
    with torch.no_grad():
        _, base, _ = mtp_forward(model, ids, tokens=3, mode=mode)
        for j in (0, 5, L - 1):
            _, out, _ = mtp_forward(model, perturbed(ids, j), tokens=3, mode=mode)
            for i, (a, b) in enumerate(zip(base, out)):
                diff = (a - b).abs().amax(-1).amax(0)  # (t,)
                assert not diff[:j].any(), (
                    f"{name}/{mode}: pass {i}: token {j} moved positions {diff[:j].nonzero().flatten().tolist()}"
                )
                reached[i] |= bool(diff[j:].any())
                if (
                    i == 0 or mode == "heads"
                ):  # a later recurrent pass moves only where an argmax of the pass before moved
                    assert diff[j] > 0, f"{name}/{mode}: pass {i}: token {j} did not move its own position (vacuous)"
    assert all(reached), f"{name}/{mode}: some pass never reacted to any perturbation (vacuous): {reached}"


def test_mtp_refused_for_a_family_that_is_not_causal(tiny_prepared, tmp_path):
    from masked_mixers.training.train import train

    run = RunConfig(
        model=ModelSpec(family="bidirectional_mixer", hidden_size=32, num_hidden_layers=2, seq_len=64),
        train=TrainConfig(output_dir=str(tmp_path), objective="mtp"),
    )
    with pytest.raises(UserError, match="train.objective: mtp needs a causal language model"):
        train(run, tiny_prepared)


# ---------------------------------------------------------------------------------------------
# Self-speculative decoding
# ---------------------------------------------------------------------------------------------


def greedy_reference(model, prompt: list[int], new: int) -> list[int]:
    text = list(prompt)
    with torch.no_grad():
        for _ in range(new):
            text.append(int(model(input_ids=torch.tensor([text])).logits[0, -1].argmax()))
    return text[len(prompt) :]


def fit_periodic(model, steps: int = 150) -> None:
    """Train on one repeating pattern until the heads draft it: acceptance then happens."""
    pattern = torch.arange(3, 3 + 7).repeat(3)[:L]
    inputs = {"input_ids": pattern.repeat(4, 1), "labels": pattern.repeat(4, 1)}
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss, _ = compute_loss(model, inputs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


@pytest.mark.parametrize("name", ["mixer", "llama"])
def test_self_speculative_decoding_returns_the_greedy_tokens(name):
    model = build(name, objective="mtp", mtp_tokens=3, mtp_mode="heads")
    randomize_heads(model)
    prompt = [5, 9, 4]
    tokens, stats = speculative_greedy(model, prompt, 10)
    assert tokens == greedy_reference(model, prompt, 10)  # random heads: drafts mostly rejected
    fit_periodic(model)
    tokens, stats = speculative_greedy(model, [3, 4, 5], 12)
    assert tokens == greedy_reference(model, [3, 4, 5], 12)
    assert stats["passes"] < stats["tokens"], "no draft was ever accepted: the acceptance path went untested"


def test_self_speculative_decoding_matches_generate():
    model = build("mixer", objective="mtp", mtp_tokens=2, mtp_mode="heads")
    fit_periodic(model)
    reference = model.generate(
        torch.tensor([[3, 4, 5]]), max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True
    )[0, 3:].tolist()
    assert speculative_greedy(model, [3, 4, 5], 10)[0] == reference


# ---------------------------------------------------------------------------------------------
# One-step completion
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPLETING)
def test_completion_reads_no_token_of_the_predicted_half(name):
    model = build(name, layers=3, objective="completion")
    ids = batch()["input_ids"]
    h = L // 2
    with torch.no_grad():
        base = completion_forward(model, ids).logits
        for j in range(h, L):  # any token of the predicted half: nothing may move, anywhere
            assert torch.equal(completion_forward(model, perturbed(ids, j)).logits, base), f"{name}: token {j} leaked"
        moved = (completion_forward(model, perturbed(ids, 2)).logits - base).abs().amax(-1)[0]
        assert moved[h - 1 :].all(), f"{name}: a first-half token does not reach every prediction (vacuous)"
        plain = model(input_ids=ids).logits
        assert not torch.equal(model(input_ids=perturbed(ids, h + 1)).logits, plain), (
            "without the mask the token does leak (sanity)"
        )


@pytest.mark.parametrize("name", ["mixer", "llama"])
def test_completion_loss_covers_only_the_predicted_half(name):
    model = build(name, layers=4, objective="completion")
    inputs = batch()
    labels = inputs["labels"]
    h = L // 2
    loss, out = compute_loss(model, inputs)
    expected = F.cross_entropy(out.logits[:, h - 1 : L - 1].flatten(0, 1), labels[:, h:].flatten())
    torch.testing.assert_close(loss, expected)
    other = dict(inputs, labels=torch.cat([torch.full((2, h), 7), labels[:, h:]], dim=1))
    assert torch.equal(compute_loss(model, other)[0], loss)  # first-half labels do not count
    assert model.config.training_objective == {"name": "completion", "mask_layer": 2, "split": h}


def test_one_step_generation_is_the_argmax_of_one_pass():
    model = build("mixer", layers=2, objective="completion")
    prompt = list(range(3, 3 + L // 2))
    new = one_step_ids(model, [prompt], pad_id=0)
    assert new.shape == (1, L // 2)
    ids = torch.tensor([prompt + [0] * (L // 2)])
    with torch.no_grad():
        logits = completion_forward(model, ids).logits
    assert new[0].tolist() == logits[0, L // 2 - 1 : L - 1].argmax(-1).tolist()


def test_completion_refused_for_a_family_without_the_capability(tiny_prepared, tmp_path):
    from masked_mixers.training.train import train

    run = RunConfig(
        model=ModelSpec(family="mixer_autoencoder", hidden_size=32, num_hidden_layers=2, seq_len=64),
        train=TrainConfig(output_dir=str(tmp_path), objective="completion"),
    )
    with pytest.raises(UserError, match="completion is supported by mixer, llama"):
        train(run, tiny_prepared)


# ---------------------------------------------------------------------------------------------
# Save / load, training and evaluation end to end
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "objective", [dict(objective="mtp", mtp_tokens=3, mtp_mode="heads"), dict(objective="completion")]
)
@pytest.mark.parametrize("name", ["mixer", "llama"])
def test_objective_parameters_survive_save_and_load(name, objective, tmp_path):
    model = build(name, layers=2, **objective)
    if objective["objective"] == "mtp":
        randomize_heads(model)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, trust_remote_code=False).eval()
    restore(loaded, tmp_path)
    inputs = batch()
    torch.testing.assert_close(compute_loss(loaded.train(), inputs)[0], compute_loss(model.train(), inputs)[0])


def tiny_run(family, output_dir, **train):
    model = ModelSpec(family=family, hidden_size=32, num_hidden_layers=2, seq_len=64, num_heads=4)
    options = dict(
        output_dir=str(output_dir),
        max_steps=6,
        batch_size=8,
        eval_steps=3,
        max_eval_batches=2,
        save_steps=0,
        logging_steps=3,
        warmup_steps=1,
    )
    return RunConfig(model=model, train=TrainConfig(**{**options, **train}))


def test_mtp_training_run_reports_next_token_and_each_head(tiny_prepared, tmp_path):
    from masked_mixers.cli import main
    from masked_mixers.training.train import train

    result = train(tiny_run("mixer", tmp_path, objective="mtp", mtp_tokens=2, mtp_mode="heads"), tiny_prepared)
    ev = result.eval_metrics
    assert ev["mtp_loss_0"] == pytest.approx(ev["loss"], rel=1e-5) and math.isfinite(ev["mtp_loss_1"])
    from masked_mixers.runs.rundir import read_metrics

    assert [r for r in read_metrics(tmp_path) if "eval_loss" in r], "the Trainer's evaluations are logged"
    assert (
        main(
            [
                "generate",
                str(tmp_path),
                "--prompt",
                "once upon a time",
                "--max-new-tokens",
                "6",
                "--greedy",
                "--speculative",
            ]
        )
        == 0
    )
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "generate",
                "--speculative",
                str(tmp_path),
                "--new-tokens",
                "4",
                "--repeats",
                "1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    bench = json.loads(out.read_text())
    assert {r["model"] for r in bench["rows"]} == {"speculative", "greedy-no-cache", "greedy-cached"}
    assert 0.5 <= bench["passes_per_token"] <= 1 and bench["speedups"]["speculative_vs_greedy-no-cache"] > 0


def test_completion_training_run_and_one_step_generation(tiny_prepared, tmp_path, capsys):
    from masked_mixers.cli import main
    from masked_mixers.runs.rundir import read_metrics
    from masked_mixers.training.train import train

    result = train(tiny_run("llama", tmp_path, objective="completion"), tiny_prepared)
    ev = result.eval_metrics
    assert ev["loss"] == ev["completion_loss"] and 0 <= ev["token_accuracy"] <= 1 and ev["completion_tokens"] > 0
    # the Trainer's own evaluation at the last step (same model, same held-out examples) agrees with it:
    # its divisor counts the predicted half only, not the whole example
    last = [r for r in read_metrics(tmp_path) if "eval_loss" in r][-1]
    assert last["step"] == result.steps and last["eval_loss"] == pytest.approx(ev["completion_loss"], rel=1e-4)
    capsys.readouterr()
    assert main(["generate", str(tmp_path), "--prompt", "once upon a time", "--one-step"]) == 0
    assert capsys.readouterr().out.startswith("once upon a time")


# ---------------------------------------------------------------------------------------------
# compare: either objective across families, and the report says which
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, says",
    [
        (
            ["train.objective=mtp", "train.mtp_mode=heads", "train.mtp_tokens=3"],
            "multi-token prediction (mtp, n = 3, mode heads)",
        ),
        (["train.objective=completion"], "one-step completion"),
    ],
)
def test_compare_runs_an_objective_and_the_report_names_it(overrides, says, tmp_path):
    from pathlib import Path

    from standin_data import prepare_standin

    from masked_mixers.compare import run_compare
    from masked_mixers.compare.config import load_compare_config

    config = load_compare_config(Path(__file__).resolve().parents[1] / "configs" / "compare-tiny.yaml", overrides)
    run_compare(config, tmp_path, prepare=lambda d, L: prepare_standin(d, L, n_train=64, n_eval=16), progress=False)
    results = json.loads((tmp_path / "results.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert results["objective"] == config.train.objective and says in report
    for row in results["models"]:
        assert row["objective"] == config.train.objective and math.isfinite(row["eval_loss"])
        if config.train.objective == "mtp":
            assert len(row["mtp_losses"]) == 3 and row["mtp_losses"][0] == pytest.approx(row["eval_loss"], rel=1e-5)
        else:
            assert 0 <= row["token_accuracy"] <= 1 and row["samples"]
    if config.train.objective == "mtp":
        assert "| token +1 | token +2 | token +3 |" in report
    else:
        assert "| completion loss | token accuracy |" in report
