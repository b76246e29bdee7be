"""Ablations: divergence detection, the switchable Llama (equal to LlamaForCausalLM when whole), causality."""

import json
import math

import pytest
import torch
from transformers import LlamaForCausalLM

from masked_mixers.cli import main
from masked_mixers.core.errors import UserError
from masked_mixers.models import FAMILIES
from masked_mixers.probes.ablation import (
    ABLATABLE_FAMILIES,
    SPIKE_FACTOR,
    ablation_runs,
    largest_grad_norm,
    loss_spikes,
    markdown_table,
    summarize_run,
)
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig, save_yaml
from masked_mixers.runs.factory import build_model, count_parameters
from masked_mixers.training.divergence import diverged_at, divergence_threshold, healthy_points

VOCAB, L = 40, 12
SWITCHES = ("use_layer_norm", "use_residual", "use_feed_forward")

# --- the one definition of divergence on synthetic loss sequences -------------------------------


def _decreasing(n=50):
    return [8.0 * math.exp(-i / 10) + 2.0 for i in range(n)]


def _points(losses, every=1):
    return [(every * i, v) for i, v in enumerate(losses)]


def test_normal_decreasing_loss_does_not_diverge():
    assert diverged_at(_points(_decreasing()), VOCAB) is None


def test_noisy_loss_and_spikes_below_the_threshold_do_not_diverge():
    torch.manual_seed(0)
    noisy = [v * (1 + 0.05 * float(torch.randn(()))) for v in _decreasing(200)]  # logged losses are step averages
    noisy[120] = noisy[150] = 10.0  # threshold 3 x ln(40) = 11.07
    assert diverged_at(_points(noisy), VOCAB) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_loss_diverges_at_its_step(bad):
    losses = _decreasing(30)
    losses[17] = bad
    assert diverged_at(_points(losses), VOCAB) == 17
    assert diverged_at(_points(losses, every=10), VOCAB) == 170


def test_a_loss_above_factor_times_ln_vocab_diverges_at_its_step():
    threshold = divergence_threshold(VOCAB)
    assert threshold == pytest.approx(3 * math.log(VOCAB))
    losses = _decreasing(30) + [threshold, threshold * 1.01, 5.0]
    assert (
        diverged_at(_points(losses), VOCAB) == 31
    )  # at the threshold is not above it; a later recovery does not undo it
    assert diverged_at(_points(losses), VOCAB, factor=4.0) is None
    assert [v for _, v in healthy_points(_points(losses), VOCAB)] == losses[:31]


def test_divergence_arguments_are_checked():
    for vocab, factor in ((1, 3.0), (VOCAB, 1.0), (VOCAB, math.nan)):
        with pytest.raises(ValueError):
            divergence_threshold(vocab, factor)


# --- the ablated Llama ------------------------------------------------------------------------


def _spec(family, layers=2, seq_len=L, **switches):
    return ModelSpec(family=family, hidden_size=32, num_hidden_layers=layers, seq_len=seq_len, num_heads=4, **switches)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_ablated_llama_with_every_part_equals_llama(attn):
    torch.manual_seed(0)
    reference, _ = build_model(_spec("llama"), VOCAB)
    ablated, _ = build_model(_spec("llama_ablated"), VOCAB)
    assert not isinstance(ablated, LlamaForCausalLM)
    ablated.load_state_dict(reference.state_dict())  # same parameter names: strict load
    for model in (reference, ablated):
        model.set_attn_implementation(attn)
        model.eval()
    ids = torch.randint(0, VOCAB, (2, L))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    a = reference(ids, attention_mask=mask, output_hidden_states=True)
    b = ablated(ids, attention_mask=mask, output_hidden_states=True)
    # real tokens only: a pad query attends to itself here (models/attention_mask.py) and takes
    # the last real token's position, so the (ignored) outputs at pads differ from Llama's
    real = mask.bool()
    torch.testing.assert_close(b.logits[real], a.logits[real], rtol=0, atol=1e-5)
    for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
        torch.testing.assert_close(y[real], x[real], rtol=0, atol=1e-5)


@pytest.mark.parametrize("switch", SWITCHES)
def test_ablated_llama_drops_the_part(switch):
    whole, _ = build_model(_spec("llama_ablated"), VOCAB)
    ablated, _ = build_model(_spec("llama_ablated", **{switch: False}), VOCAB)
    names = {n.split(".")[-2] for n, _ in ablated.named_parameters() if "layers" in n} | {
        n for n, _ in ablated.named_parameters()
    }
    if switch == "use_layer_norm":
        assert not any("layernorm" in n or n.startswith("model.norm") for n in names)
    if switch == "use_feed_forward":
        assert not any("mlp" in n for n in names)
    if switch == "use_residual":  # same parameters, different function
        assert len(list(ablated.parameters())) == len(list(whole.parameters()))
        ablated.load_state_dict(whole.state_dict())
        ids = torch.randint(0, VOCAB, (1, L))
        assert not torch.allclose(ablated(ids).logits, whole(ids).logits)


def test_ablatable_families_come_from_the_family_table():
    """Every family declaring ablation switches is in the sweep, under its CLI name; llama means llama_ablated."""
    assert sorted(ABLATABLE_FAMILIES.values()) == sorted(
        n for n, f in FAMILIES.items() if f.capabilities.ablation_switches
    )
    assert ABLATABLE_FAMILIES == {"mixer": "mixer", "llama": "llama_ablated"}


def test_plain_llama_family_refuses_ablation_switches():
    with pytest.raises(UserError, match="llama_ablated"):
        build_model(_spec("llama", use_residual=False), VOCAB)


@pytest.mark.parametrize("family", ["mixer", "llama_ablated"])
@pytest.mark.parametrize("switch", SWITCHES)
def test_ablated_models_stay_causal(family, switch):
    """Changing token j leaves logits before j unchanged, and does change logits at j."""
    torch.manual_seed(0)
    model, _ = build_model(_spec(family, **{switch: False}), VOCAB)
    model.eval()
    ids = torch.randint(0, VOCAB, (1, L))
    j = 7
    changed = ids.clone()
    changed[0, j] = (ids[0, j] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(ids).logits, model(changed).logits
    torch.testing.assert_close(after[:, :j], before[:, :j], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, j], before[:, j])


def test_feed_forward_attention_replaces_the_mlp_with_a_second_attention():
    """The switch swaps each block's MLP for a LlamaAttention (own pre-norm and residual); the model stays causal."""
    torch.manual_seed(0)
    model, _ = build_model(_spec("llama_ablated", feed_forward_attention=True), VOCAB)
    no_ff, _ = build_model(_spec("llama_ablated", use_feed_forward=False), VOCAB)
    names = [n for n, _ in model.named_parameters()]
    assert not any(".mlp." in n for n in names) and any(".feed_forward_attn.q_proj" in n for n in names)
    attention = sum(p.numel() for p in model.model.layers[0].self_attn.parameters())
    norm = sum(p.numel() for p in model.model.layers[0].post_attention_layernorm.parameters())
    assert count_parameters(model).total == count_parameters(no_ff).total + 2 * (attention + norm)  # 2 layers
    model.eval()
    ids = torch.randint(0, VOCAB, (1, L))
    changed = ids.clone()
    changed[0, 7] = (ids[0, 7] + 1) % VOCAB
    with torch.no_grad():
        before, after = model(ids).logits, model(changed).logits
    torch.testing.assert_close(after[:, :7], before[:, :7], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, 7], before[:, 7])
    with pytest.raises(UserError, match="needs use_feed_forward"):
        build_model(_spec("llama_ablated", feed_forward_attention=True, use_feed_forward=False), VOCAB)
    with pytest.raises(UserError, match="llama_ablated"):  # a knob of llama_ablated only
        build_model(_spec("mixer", feed_forward_attention=True), VOCAB)


def test_ablated_llama_trains_and_generates():
    model, _ = build_model(_spec("llama_ablated", use_layer_norm=False), VOCAB, pad_token_id=0, eos_token_id=1)
    ids = torch.randint(2, VOCAB, (2, L))
    loss = model(ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and model.lm_head.weight.grad is not None
    out = model.eval().generate(ids[:1, :4], max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 7)


# --- the ablate command -----------------------------------------------------------------------


def test_variants_switch_one_part_each(tmp_path):
    variants = ablation_runs(RunConfig(model=_spec("mixer")), ["mixer", "llama"], ["none", "no_residual"], tmp_path)
    assert [(f, a, v.model.family) for f, a, v in variants] == [
        ("mixer", "none", "mixer"),
        ("mixer", "no_residual", "mixer"),
        ("llama", "none", "llama_ablated"),
        ("llama", "no_residual", "llama_ablated"),
    ]
    off = {(f, a): [s for s in SWITCHES if not getattr(v.model, s)] for f, a, v in variants}
    assert off[("mixer", "none")] == [] and off[("llama", "no_residual")] == ["use_residual"]
    assert len({v.train.output_dir for _, _, v in variants}) == 4
    with pytest.raises(UserError, match="gpt"):
        ablation_runs(RunConfig(), ["gpt"], ["none"], tmp_path)
    assert all(v.train.max_grad_norm == 1.0 for _, _, v in variants)  # the config's clipping, as the paper's HF Trainer


def test_feed_forward_attention_variant_and_no_clip(tmp_path, capsys):
    """feed_forward_attention is a llama row only (the mixer has no such switch); clip=False turns clipping off."""
    variants = ablation_runs(
        RunConfig(model=_spec("mixer")), ["mixer", "llama"], ["none", "feed_forward_attention"], tmp_path, clip=False
    )
    assert [(f, a) for f, a, _ in variants] == [
        ("mixer", "none"),
        ("llama", "none"),
        ("llama", "feed_forward_attention"),
    ]
    assert "mixer: skipping feed_forward_attention" in capsys.readouterr().out
    switched = {a: v.model.feed_forward_attention for f, a, v in variants if f == "llama"}
    assert switched == {"none": False, "feed_forward_attention": True}
    assert all(v.train.max_grad_norm == 0.0 and v.model.use_feed_forward for _, _, v in variants)
    row = summarize_run(
        "llama", "feed_forward_attention", [{"step": 1, "loss": 3.0}], None, 10, VOCAB, max_grad_norm=0.0
    )
    assert markdown_table([row]).splitlines()[-1].endswith("| 0 (off) | - | 0 |")  # no grad norm logged, no spike


def test_summary_row_and_table():
    history = [{"step": 10 * i, "loss": v} for i, v in enumerate(_decreasing(10))] + [
        {"step": 100, "eval_loss": 2.5},
        {"step": 110, "loss": float("nan")},
    ]
    row = summarize_run("llama", "no_residual", history, {"eval_loss": 2.5}, 1234, VOCAB)
    assert row["diverged_at"] == 110 and row["final_loss"] is None and row["eval_loss"] is None and row["steps"] == 110
    assert row["min_loss"] == pytest.approx(_decreasing(10)[-1])
    table = markdown_table([row])
    assert "| llama | no_residual | 1234 | 110 | - |" in table
    healthy = summarize_run("llama", "none", history[:10], {"eval_loss": 2.5}, 1234, VOCAB)
    assert (
        healthy["diverged_at"] is None and healthy["final_loss"] == history[9]["loss"] and healthy["eval_loss"] == 2.5
    )


def test_loss_spikes_count_losses_above_twice_the_running_median():
    falling = [8.0, 6.0, 5.0, 4.5, 4.2, 4.0, 3.9, 3.8]
    assert loss_spikes(falling) == 0  # a falling loss never spikes, however steep its start
    # the running median stays 4.0: 7.9 is below its double, 8.1 and 20 are above, and the NaN counts too
    history = falling + [4.0] * 10 + [7.9, 8.1, 4.0, 20.0, 4.0, float("nan")]
    assert SPIKE_FACTOR == 2.0 and loss_spikes(history) == 3
    # the window decides what "running" means: over the last 2 losses a plateau at 20 is the new normal
    assert loss_spikes([5.0, 5.0, 5.0, 20.0, 20.0, 11.0], window=2) == 1
    assert loss_spikes([5.0, 5.0, 5.0, 20.0, 20.0, 11.0], window=5) == 3
    assert loss_spikes([]) == loss_spikes([float("inf")]) == 0  # the first loss has no running median


def test_largest_grad_norm_and_spikes_in_the_summary_row():
    history = [{"step": i, "loss": v, "grad_norm": g} for i, (v, g) in enumerate([(5.0, 1.0), (4.0, 30.0), (9.5, 2.0)])]
    history += [{"step": 3, "eval_loss": 4.1}]  # an evaluation event has neither
    assert largest_grad_norm(history) == 30.0 and largest_grad_norm(history[-1:]) is None
    assert largest_grad_norm([{"grad_norm": 1.0}, {"grad_norm": float("inf")}]) == math.inf
    row = summarize_run("llama", "no_layer_norm", history, {"eval_loss": 4.1}, 10, VOCAB)
    assert (row["largest_grad_norm"], row["loss_spikes"]) == (30.0, 1)
    assert "| 30.0000 | 1 |" in markdown_table([row])


def test_a_finite_blow_up_ends_the_final_loss_where_the_run_diverged():
    """A run that blew up without reaching NaN has no final loss; its min_loss is from before the blow-up."""
    history = [
        {"step": 4, "loss": 3.0},
        {"step": 8, "loss": 2.5},
        {"step": 12, "loss": 4e16},
        {"step": 16, "loss": 1.0},
    ]
    row = summarize_run("mixer", "no_layer_norm", history, {"eval_loss": 9e15}, 10, VOCAB)
    assert (row["diverged_at"], row["final_loss"], row["min_loss"], row["eval_loss"], row["steps"]) == (
        12,
        None,
        2.5,
        None,
        16,
    )


def _ablate_config(tmp_path, data_config, **train):
    """A run config over the session's prepared TinyStories slice (L=64, so its cache is reused)."""
    options = (
        dict(
            max_steps=20, batch_size=8, logging_steps=4, eval_steps=0, save_steps=0, warmup_steps=2, learning_rate=5e-3
        )
        | train
    )
    run = RunConfig(model=_spec("mixer", layers=1, seq_len=64), data=data_config, train=TrainConfig(**options))
    path = tmp_path / "run.yaml"
    save_yaml(run, path)
    return str(path)


def _report(out):
    report = json.loads((out / "ablation.json").read_text())
    assert (out / "ablation.png").stat().st_size > 0
    return report, {(r["family"], r["ablation"]): r for r in report["rows"]}


def test_ablate_command_on_real_data(tmp_path, tiny_data_config, tiny_prepared):
    """Every variant trains through the real train() for the same budget; healthy runs report a final loss."""
    out = tmp_path / "ablate"
    ablations = ["none", "no_residual"]
    assert (
        main(
            ["ablate", _ablate_config(tmp_path, tiny_data_config), "--ablations", *ablations, "--output-dir", str(out)]
        )
        == 0
    )
    report, rows = _report(out)
    assert list(rows) == [(f, a) for f in ("mixer", "llama") for a in ablations]
    baseline = tiny_prepared.stats["unigram_baseline"]
    for (family, ablation), row in rows.items():
        assert row["steps"] == 20 and row["diverged_at"] is None, row
        assert row["final_loss"] < math.log(1024) and row["eval_loss"] < baseline + 1.0, row  # it learned something
        assert (out / family / ablation / "model.safetensors").is_file()
        assert [s for s, _ in report["loss_histories"][family][ablation]] == [4, 8, 12, 16, 20]
    assert (
        rows[("llama", "none")]["config"]["family"] == "llama_ablated"
        and not rows[("mixer", "no_residual")]["config"]["use_residual"]
    )
    table = (out / "ablation.md").read_text()
    assert all(f"| {f} | {a} |" in table for f, a in rows)


def test_ablate_command_records_a_real_divergence_and_goes_on(tmp_path, tiny_data_config, tiny_prepared):
    """A learning rate of 10 without clipping blows the loss up: the row says where, by the shared definition;
    the sweep goes on.

    Where the loss crosses the threshold, and whether it reaches NaN within the budget, depends on
    the CPU: only what the definition guarantees is asserted.
    """
    out = tmp_path / "ablate"
    config = _ablate_config(tmp_path, tiny_data_config, learning_rate=10.0, max_grad_norm=0.0)
    assert (
        main(
            ["ablate", config, "--families", "llama", "mixer", "--ablations", "no_layer_norm", "--output-dir", str(out)]
        )
        == 0
    )
    report, rows = _report(out)
    vocab = len(tiny_prepared.tokenizer)
    diverged = rows[("llama", "no_layer_norm")]
    history = [
        (step, math.nan if loss is None else loss) for step, loss in report["loss_histories"]["llama"]["no_layer_norm"]
    ]  # NaN written as null
    assert diverged["diverged_at"] is not None and 0 < diverged["diverged_at"] <= 20
    assert diverged["diverged_at"] == diverged_at(history, vocab)
    assert diverged["final_loss"] is None and diverged["eval_loss"] is None
    assert diverged["min_loss"] == (
        min(v for _, v in healthy_points(history, vocab)) if healthy_points(history, vocab) else None
    )
    model, _ = build_model(
        _spec("llama_ablated", layers=1, seq_len=64, use_layer_norm=False), len(tiny_prepared.tokenizer)
    )
    assert diverged["parameters"] == count_parameters(model).total  # counted though training failed
    for row, points in ((r, report["loss_histories"][r["family"]][r["ablation"]]) for r in report["rows"]):
        assert row["diverged_at"] == diverged_at(
            [(s, math.nan if v is None else v) for s, v in points], vocab
        )  # every row, one definition
    assert ("mixer", "no_layer_norm") in rows  # the sweep went on after the failure
