"""Training options researchers expect: init_from, gradient checkpointing, optimizer choice; beam search with the
cache."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM
from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig, load_run_config
from masked_mixers.training.train import train


def tiny_run(output_dir, family="mixer", **train_overrides):
    model = ModelSpec(family=family, hidden_size=32, num_hidden_layers=2, seq_len=64, num_heads=4)
    options = dict(
        output_dir=str(output_dir),
        max_steps=3,
        batch_size=8,
        eval_steps=0,
        save_steps=0,
        logging_steps=1,
        warmup_steps=0,
    )
    options.update(train_overrides)
    return RunConfig(model=model, train=TrainConfig(**options))


class Record(TrainerCallback):
    """Keeps what the Trainer trained with: the optimizer, and whether the blocks checkpoint."""

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
        self.checkpointing = [
            getattr(m, "gradient_checkpointing", False) for m in model.modules() if hasattr(m, "gradient_checkpointing")
        ]


def _weights(run_dir):
    return load_file(str(run_dir / "model.safetensors"))


def test_init_from_starts_where_the_run_ended(tiny_prepared, tmp_path):
    first = tmp_path / "first"
    train(tiny_run(first, learning_rate=5e-3), prepared=tiny_prepared)
    # learning rate 0: if the second run started from the first, it ends with the same weights
    second = tmp_path / "second"
    result = train(tiny_run(second, learning_rate=0.0, max_steps=1, init_from=str(first)), prepared=tiny_prepared)
    before, after = _weights(first), _weights(second)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    fresh = tmp_path / "fresh"
    train(tiny_run(fresh, learning_rate=0.0, max_steps=1, seed=7), prepared=tiny_prepared)
    assert not torch.equal(_weights(fresh)["lm_head.weight"], before["lm_head.weight"])  # not a coincidence of seeds
    assert result.model.config.padding_side == "right"


def test_init_from_refuses_a_different_model(tiny_prepared, tmp_path):
    first = tmp_path / "first"
    train(tiny_run(first), prepared=tiny_prepared)
    other = tiny_run(tmp_path / "second", init_from=str(first))
    other.model.seq_len = 32
    with pytest.raises(UserError, match=r"train.init_from: .* seq_len 64.*model.seq_len=32"):
        train(other, prepared=tiny_prepared)
    with pytest.raises(UserError, match=r"train.init_from: .*nowhere/at-all"):
        train(tiny_run(tmp_path / "third", init_from=str(tmp_path / "nowhere/at-all")), prepared=tiny_prepared)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = MaskedMixerForCausalLM(
        MaskedMixerConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, seq_len=12, mixer_type="multihead")
    )
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    model.train()

    def grads():
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    model.activation_checkpointing_enable()  # non-reentrant by default
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    recomputed = grads()
    for name in plain:
        torch.testing.assert_close(recomputed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_checkpointing_in_training(tiny_prepared, tmp_path):
    record = Record()
    train(tiny_run(tmp_path / "run", gradient_checkpointing=True), prepared=tiny_prepared, callbacks=[record])
    assert record.checkpointing and all(record.checkpointing)


@pytest.mark.parametrize("name, class_name", [("adamw", "AdamW"), ("adafactor", "Adafactor"), ("sgd", "SGD")])
def test_optimizer_choice(name, class_name, tiny_prepared, tmp_path):
    record = Record()
    result = train(
        tiny_run(tmp_path / name, optimizer=name, learning_rate=1e-2), prepared=tiny_prepared, callbacks=[record]
    )
    assert type(record.optimizer).__name__ == class_name
    assert result.train_loss == result.train_loss  # finite


def test_an_unknown_optimizer_is_one_line_naming_the_key(tmp_path):
    (tmp_path / "run.yaml").write_text("model:\n  family: mixer\ntrain:\n  optimizer: adamw\n")
    assert load_run_config(tmp_path / "run.yaml").train.optimizer == "adamw"
    with pytest.raises(UserError, match=r"train.optimizer.*adamw.*adafactor.*sgd"):
        load_run_config(tmp_path / "run.yaml", ["train.optimizer=lion"])


@pytest.mark.parametrize("mixer_type", ["flat", "expanded", "multihead"])
def test_beam_search_with_the_cache_equals_beam_search_without(mixer_type):
    """Past L too (seq_len 8, 20 new tokens): the reordered cache re-primes each beam's own window."""
    torch.manual_seed(0)
    config = MaskedMixerConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=2, seq_len=8, mixer_type=mixer_type, num_heads=4
    )
    model = MaskedMixerForCausalLM(config).eval()
    prompt = torch.randint(0, 40, (2, 3), generator=torch.Generator().manual_seed(2))
    options = dict(max_new_tokens=20, num_beams=4, do_sample=False, early_stopping=False, length_penalty=0.0)
    with torch.no_grad():
        cached = model.generate(prompt, use_cache=True, **options)
        uncached = model.generate(prompt, use_cache=False, **options)
        greedy = model.generate(prompt, use_cache=True, max_new_tokens=20, do_sample=False)
    assert cached.shape == (2, 23)
    assert torch.equal(cached, uncached)
    assert not torch.equal(cached, greedy)  # the beams did something
