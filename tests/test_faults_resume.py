"""Fault-and-misuse suite, issue 24 items 2 and 3 (training side): damaged checkpoints, a resume
without its schedule, non-finite final weights, a real full disk, and a tokenizer that is not the
model's. Every damage is done to real files written by a real tiny run."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import torch
from faults import copy_model, expect_one_line, record, snapshot, tiny_config
from test_faults_train import StopAt
from transformers import TrainerCallback

from masked_mixers.core.errors import UserError
from masked_mixers.core.files import save_safetensors
from masked_mixers.runs import manifest
from masked_mixers.runs.checkpoints import damage, newest_intact
from masked_mixers.runs.config import load_run_config
from masked_mixers.runs.rundir import load_run, read_metrics
from masked_mixers.training import train as training
from masked_mixers.training.train import train


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("resume-cache")


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, cache):
    """A run of 6 steps stopped after step 4: checkpoint-2, checkpoint-4, a model and a summary saying 4 steps."""
    root = tmp_path_factory.mktemp("stopped")
    run = load_run_config(tiny_config(root, cache=cache, max_steps=6, save_steps=2))
    train(run, callbacks=[StopAt(4)])
    assert sorted(p.name for p in (root / "out").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    return root / "out"


def _copy(stopped_run, tmp_path, cache, **train_keys):
    """A copy of the stopped run in tmp_path/out and a config resuming it (same keys as the original)."""
    shutil.copytree(stopped_run, tmp_path / "out")
    return tiny_config(tmp_path, cache=cache, **{"max_steps": 6, "save_steps": 2, **train_keys})


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


class Payload:
    """Unpickling this creates `marker`: what a malicious optimizer.pt would do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


DAMAGES = {
    "truncated trainer_state.json": (lambda c: _truncate(c / "trainer_state.json"), "trainer_state.json is damaged"),
    "truncated optimizer.pt": (lambda c: _truncate(c / "optimizer.pt"), "optimizer.pt cannot be loaded"),
    "truncated weights": (lambda c: _truncate(c / "model.safetensors"), "weights damaged"),
    "missing weights": (lambda c: (c / "model.safetensors").unlink(), "no model weights"),
    "missing scheduler.pt": (lambda c: (c / "scheduler.pt").unlink(), "no scheduler.pt"),
    "missing optimizer.pt": (lambda c: (c / "optimizer.pt").unlink(), "no optimizer.pt"),
    "truncated rng state": (lambda c: _truncate(c / "rng_state.pth"), "rng_state.pth cannot be loaded"),
    "no global_step": (lambda c: (c / "trainer_state.json").write_text("{}"), "has no global_step"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_each_damage_is_named_and_the_intact_checkpoint_passes(stopped_run, tmp_path, kind):
    checkpoint = shutil.copytree(stopped_run / "checkpoint-4", tmp_path / "checkpoint-4")
    assert damage(checkpoint) is None
    harm, why = DAMAGES[kind]
    harm(checkpoint)
    assert why in damage(checkpoint)


def test_a_pickle_payload_in_optimizer_pt_is_refused_never_run(stopped_run, tmp_path):
    checkpoint = shutil.copytree(stopped_run / "checkpoint-4", tmp_path / "checkpoint-4")
    marker = tmp_path / "payload-ran"
    torch.save(Payload(marker), checkpoint / "optimizer.pt")
    assert "optimizer.pt cannot be loaded safely" in damage(checkpoint)
    assert not marker.exists()


def test_an_empty_folder_and_a_non_checkpoint_name(tmp_path):
    (tmp_path / "checkpoint-999").mkdir()
    (tmp_path / "checkpoint-x").mkdir()  # not a checkpoint name: never considered
    assert damage(tmp_path / "checkpoint-999") == "no trainer_state.json"
    with pytest.raises(
        UserError, match=r"no intact checkpoint to resume from \(checkpoint-999 \(no trainer_state.json\)\)"
    ):
        newest_intact(tmp_path)
    assert newest_intact(tmp_path / "absent") is None


@pytest.mark.parametrize("kind", ["truncated optimizer.pt", "missing scheduler.pt", "empty checkpoint-999"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(stopped_run, tmp_path, cache, capsys, monkeypatch, kind):
    from masked_mixers.cli import main

    config = _copy(stopped_run, tmp_path, cache, save_steps=0)  # no new checkpoint: the damaged one must stay as it is
    out = tmp_path / "out"
    if (
        kind == "empty checkpoint-999"
    ):  # left by a save cut short: the manifest lists it (a user's own is refused, below)
        (out / "checkpoint-999").mkdir()
        manifest.record(out, "checkpoint-999")
        skipped, used = out / "checkpoint-999", out / "checkpoint-4"
    else:
        DAMAGES[kind][0](out / "checkpoint-4")
        skipped, used = out / "checkpoint-4", out / "checkpoint-2"
    evidence = snapshot(skipped)
    chosen = []
    real = training._resume_checkpoint
    monkeypatch.setattr(training, "_resume_checkpoint", lambda *a, **k: chosen.append(real(*a, **k)) or chosen[-1])
    capsys.readouterr()
    assert main(["train", str(config)]) == 0
    err = capsys.readouterr().err
    assert chosen == [str(used)]
    assert f"{skipped}: skipped for resume: " in err, err
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 6
    assert snapshot(skipped) == evidence  # skipped, never deleted or changed
    record(24)


def test_a_checkpoint_folder_the_toolkit_did_not_write_is_refused(stopped_run, tmp_path, cache, capsys):
    """An empty checkpoint-999 the user made (not in the manifest) is not the toolkit's: one line, nothing touched."""
    config = _copy(stopped_run, tmp_path, cache)
    out = tmp_path / "out"
    (out / "checkpoint-999").mkdir()
    line = expect_one_line(["train", config], capsys, watched=(out,), names="checkpoint-999", item=24)
    assert "did not write" in line


def test_resume_with_no_intact_checkpoint_is_one_line(stopped_run, tmp_path, cache, capsys):
    config = _copy(stopped_run, tmp_path, cache)
    out = tmp_path / "out"
    for step in (2, 4):
        (out / f"checkpoint-{step}" / "scheduler.pt").unlink()  # e.g. copied without it: warm-up would restart
    watched = tuple(out / f"checkpoint-{step}" for step in (2, 4))
    line = expect_one_line(
        ["train", config], capsys, watched=watched, names="no intact checkpoint to resume from", item=24
    )
    assert "checkpoint-4 (no scheduler.pt" in line and "checkpoint-2 (no scheduler.pt" in line


class Overflow(TrainerCallback):
    """After step `step`'s update, the embedding becomes inf: what an absurd learning rate does (lr 1e30 in the
    issue). Every later loss is then non-finite, so "skip" drops every later step."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.get_input_embeddings().weight.fill_(float("inf"))


def test_nonfinite_final_weights_are_never_saved_nor_summarised(tmp_path, cache):
    run = load_run_config(tiny_config(tmp_path, cache=cache, max_steps=6, on_nonfinite="skip", logging_steps=1))
    with pytest.raises(
        UserError,
        match=r"the weights are non-finite after step 6 \(.*; 5 of 6 steps skipped\); not saved as the final model",
    ):
        train(run, callbacks=[Overflow(1)])
    out = tmp_path / "out"
    assert [r["skipped_step"] for r in read_metrics(out) if "skipped_step" in r] == [2, 3, 4, 5, 6]
    assert not (out / "model.safetensors").exists() and not (out / "config.json").exists()
    assert not (out / "train_summary.json").exists()


def test_a_run_that_skipped_most_steps_says_so(tmp_path, cache, capsys):
    from masked_mixers.runs.factory import build_model

    run = load_run_config(tiny_config(tmp_path, cache=cache, max_steps=4, on_nonfinite="skip"))
    model, _ = build_model(run.model, 512)
    forwards = []

    def poison_after_the_first(module, args, kwargs, output):  # losses 2-4 are NaN; their updates are dropped
        forwards.append(1)
        if len(forwards) > 1 and module.training:
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(poison_after_the_first, with_kwargs=True)
    capsys.readouterr()
    result = train(run, model=model)
    assert result.skipped_steps == [2, 3, 4]
    assert (
        "3 of 4 steps were skipped (non-finite loss)" in capsys.readouterr().err
        and (tmp_path / "out" / "train_summary.json").is_file()
    )


# --- a real full disk ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs mounted at tmp_path/disk (root only); skipped where mounting is not permitted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _fill(disk, leave: int) -> None:
    """Fill `disk` until only about `leave` bytes are free."""
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(free - leave, 0))


def test_a_real_full_disk_during_a_checkpoint_is_one_line_without_staging(small_disk, cache, capsys):
    config = tiny_config(small_disk.parent, cache=cache, output_dir=small_disk / "out", max_steps=4, save_steps=2)
    # run.yaml, metrics, the lock and the checkpoint's code files and config (about 90 KiB in 4 KiB pages) fit;
    # the checkpoint's weights (about 200 KiB) do not: safetensors' own error type, not an OSError
    _fill(small_disk, 128 * 1024)
    line = expect_one_line(["train", config], capsys, names="cannot save the checkpoint", item=24)
    assert "SafetensorError" not in line and "No space left on device" in line
    assert not (small_disk / "out" / ".checkpoint-staging").exists()


def test_a_real_full_disk_under_save_safetensors_is_one_line_and_leaves_no_temporary(small_disk):
    _fill(small_disk, 0)
    with pytest.raises(UserError, match=r"embeddings.safetensors: cannot write \(.*No space left on device"):
        save_safetensors(small_disk / "embeddings.safetensors", {"x": torch.zeros(64, 1024)})
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


# --- a tokenizer that is not the model's --------------------------------------------------------


def test_a_foreign_smaller_tokenizer_beside_a_run_is_one_line(stopped_run, tmp_path, capsys):
    from tinyrun import tokenizer

    model = copy_model(stopped_run, tmp_path / "model")
    foreign = tokenizer()  # 300 tokens; the run's model and tokenizer have 512
    foreign.save_pretrained(model)
    line = expect_one_line(
        ["eval", model, "--max-batches", "1"],
        capsys,
        names=f"{model}: the tokenizer has {len(foreign)} tokens",
        item=24,
    )
    assert "the model's vocabulary is 512" in line


def test_a_larger_tokenizer_is_refused_and_a_padded_vocabulary_loads(tmp_path):
    from tinyrun import make_run, tokenizer

    padded = make_run(tmp_path / "padded")  # no run.yaml: the embedding may be larger than the tokenizer
    tok = tokenizer()
    tok.add_tokens(["<extra0>", "<extra1>"])
    model, loaded = load_run(padded)
    assert len(loaded) == model.get_input_embeddings().num_embeddings  # as saved
    tok.save_pretrained(padded)
    with pytest.raises(
        UserError, match=rf"{padded}: the tokenizer has {len(tok)} tokens but the model's vocabulary is {len(tok) - 2}"
    ):
        load_run(padded)
    from masked_mixers import MaskedMixerConfig, MaskedMixerForCausalLM

    wide = tmp_path / "wide"
    config = MaskedMixerConfig(vocab_size=len(tok) + 62, hidden_size=16, num_hidden_layers=2, seq_len=32)
    MaskedMixerForCausalLM(config).save_pretrained(wide)
    tok.save_pretrained(wide)
    model, loaded = load_run(wide)  # a padded embedding (62 rows past the tokenizer) is legitimate
    assert model.get_input_embeddings().num_embeddings == len(loaded) + 62
