"""Fault-and-misuse suite, `train` side (issue 16 items 1-5, 9, 10, 13, 15): finished runs, resumes,
--no-resume, changed configs, the output-folder lock, staged final saves, every training value
checked before data is read, bad output folders, and the training loss across a resume."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from faults import edit_yaml, expect_one_line, record, snapshot, tiny_config
from transformers import Trainer, TrainerCallback

from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import load_run_config
from masked_mixers.runs.rundir import locked, read_metrics
from masked_mixers.training.train import train


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-cache")


def _config(tmp_path, cache, **train_keys):
    return tiny_config(tmp_path, cache=cache, **{"max_steps": 4, "save_steps": 2, **train_keys})


def _weights(out):
    from safetensors.torch import load_file

    return load_file(out / "model.safetensors")


class StopAt(TrainerCallback):
    def __init__(self, step, exception=None):
        self.step, self.exception = step, exception

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            if self.exception:
                raise self.exception
            control.should_training_stop = True


# --- 1. a finished run re-run changes nothing ---------------------------------------------------


def test_rerun_of_a_finished_run_reports_it_and_changes_nothing(tmp_path, cache, capsys):
    from masked_mixers.cli import main

    config = _config(tmp_path, cache, learning_rate=0.05, lr_scheduler="constant")  # a final lr that is not zero
    out = tmp_path / "out"
    assert main(["train", str(config)]) == 0
    before = snapshot(out)
    capsys.readouterr()
    for _ in range(2):
        assert main(["train", str(config)]) == 0
        assert "already finished (4 steps" in capsys.readouterr().out
    assert snapshot(out) == before
    record(1)


def test_killed_after_the_last_checkpoint_finishes_without_an_extra_step(tmp_path, cache):
    run = load_run_config(_config(tmp_path, cache, learning_rate=0.05, lr_scheduler="constant"))
    train(run)
    out = tmp_path / "out"
    final = _weights(out / "checkpoint-4")
    for name in ("train_summary.json", "model.safetensors", "config.json"):  # as if killed during the final save
        (out / name).unlink()
    result = train(run)
    assert result.steps == 4 and not result.already_finished
    assert all(torch.equal(final[k], v) for k, v in _weights(out).items())
    record(1)


# --- 2. --no-resume removes the old run ---------------------------------------------------------


def test_no_resume_clears_old_checkpoints_so_a_later_run_cannot_resume_them(tmp_path, cache):
    run = load_run_config(_config(tmp_path, cache))
    train(run)
    out = tmp_path / "out"
    assert (out / "checkpoint-4").is_dir()
    with pytest.raises(KeyboardInterrupt):  # the new run is killed after one step, before its first checkpoint
        train(run, resume=False, callbacks=[StopAt(1, KeyboardInterrupt())])
    assert not list(out.glob("checkpoint-*")) and not (out / "train_summary.json").exists()
    assert all(r["step"] <= 1 for r in read_metrics(out))  # the old run's 4 logged steps are gone
    assert train(run).steps == 4  # a plain run now starts over instead of resuming the old run
    record(2)


# --- 3. a resume with a changed config ----------------------------------------------------------


@pytest.mark.parametrize(
    "change, key", [("train.learning_rate=0.001", "train.learning_rate"), ("model.hidden_size=64", "model.hidden_size")]
)
def test_resume_with_a_changed_config_names_the_keys_before_touching_run_yaml(tmp_path, cache, capsys, change, key):

    config = _config(tmp_path, cache, max_steps=6)
    run = load_run_config(config)
    train(run, callbacks=[StopAt(2)])
    out = tmp_path / "out"
    expect_one_line(["train", config, "--set", change], capsys, watched=(out,), names=key, item=3)


def test_resumable_keys_may_change(tmp_path, cache):
    config = _config(tmp_path, cache, max_steps=6)
    train(load_run_config(config), callbacks=[StopAt(2)])
    assert train(load_run_config(config, ["train.logging_steps=2", "train.save_total_limit=3"])).steps == 6
    record(3)


# --- 4. one lock per output folder --------------------------------------------------------------


def test_second_train_on_a_locked_folder_is_one_line(tmp_path, cache, capsys):
    config = _config(tmp_path, cache)
    out = tmp_path / "out"
    with locked(out):  # another process's flock: a second open file description conflicts the same way
        expect_one_line(["train", config], capsys, watched=(out,), names="another `train`", item=4)
    result = train(load_run_config(config))  # released: the folder is usable again
    assert result.steps == 4
    record(4)


# --- 5. the final model is staged ---------------------------------------------------------------


def test_a_kill_during_the_final_save_leaves_no_half_model(tmp_path, cache, monkeypatch):
    run = load_run_config(_config(tmp_path, cache))
    real_save = Trainer.save_model

    def save_then_die(self, output_dir=None, _internal_call=False):
        real_save(self, output_dir, _internal_call)
        if not _internal_call:  # the final save (checkpoints call it internally): files are in staging, nothing moved
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_model", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(run)
    out = tmp_path / "out"
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    monkeypatch.undo()
    assert train(run).steps == 4 and (out / "config.json").is_file()
    record(5)


# --- 9. every training value checked before any data is read ------------------------------------

BAD_VALUES = [
    ("train.batch_size", 0),
    ("train.gradient_accumulation_steps", 0),
    ("train.learning_rate", ".nan"),
    ("train.learning_rate", -1),
    ("train.lr_scheduler", "wobbly"),
    ("train.warmup_steps", -1),
    ("train.logging_steps", 0),
    ("train.report_to", "[not_a_logger]"),
    ("train.report_to", "[wandb]"),
    ("train.max_steps", -5),
    ("train.save_steps", -1),
    ("train.max_seconds", -1),
    ("train.max_seconds", ".inf"),
    ("train.max_flops", 0),
    ("train.max_flops", -1),
    ("train.eval_batch_size", 0),
    ("train.adam_beta1", 1.5),
    ("train.weight_decay", -0.1),
    ("train.seed", -1),
    ("train.save_total_limit", 0),
    ("model.dropout", 1.0),
    ("model.hidden_size", 0),
    ("model.seq_len", 10**9),
    ("data.eval_fraction", 1.5),
    ("data.max_documents", 0),
]


@pytest.mark.parametrize("key, value", BAD_VALUES)
def test_bad_training_values_are_one_line_before_data_is_read(tmp_path, capsys, key, value):
    config = tiny_config(tmp_path)
    watched = (tmp_path / "out", tmp_path / "cache")  # neither created: nothing tokenized, no run.yaml-only folder
    expect_one_line(["train", config, "--set", f"{key}={value}"], capsys, watched=watched, names=repr(key), item=9)


def test_missing_model_section_is_refused(tmp_path, capsys):
    config = edit_yaml(tiny_config(tmp_path), model=None)
    expect_one_line(
        ["train", config], capsys, watched=(tmp_path / "out", tmp_path / "cache"), names="no 'model' section", item=15
    )


# --- 10. output folders -------------------------------------------------------------------------


def test_output_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("not a folder")
    expect_one_line(
        ["train", tiny_config(tmp_path)],
        capsys,
        watched=(tmp_path / "out", tmp_path / "cache"),
        names="not a folder",
        item=10,
    )


def test_output_dir_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    config = tiny_config(tmp_path, output_dir=str(tmp_path / "file" / "run"))
    expect_one_line(["train", config], capsys, watched=(tmp_path / "file", tmp_path / "cache"), item=10)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_dir_is_one_line(tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o555)
    config = tiny_config(tmp_path, output_dir=str(tmp_path / "ro" / "run"))
    expect_one_line(["train", config], capsys, watched=(tmp_path / "ro",), item=10)


def test_a_full_disk_during_a_checkpoint_is_one_line_and_frees_the_staging_folder(tmp_path, cache, monkeypatch, capsys):
    def disk_full(self, output_dir):
        (tmp_path / "out" / ".checkpoint-staging" / "big").write_bytes(b"x" * 4096)
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")  # torch.save on ENOSPC

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full)
    line = expect_one_line(["train", _config(tmp_path, cache)], capsys, names="cannot save the checkpoint", item=10)
    assert "inline_container" in line and not (tmp_path / "out" / ".checkpoint-staging").exists()


# --- 13. a sequence length no model can have ----------------------------------------------------


def test_huge_seq_len_is_refused_before_tokenizing_naming_seq_len(tmp_path, capsys):
    watched = (tmp_path / "out", tmp_path / "cache")
    expect_one_line(
        ["train", tiny_config(tmp_path), "--set", "model.seq_len=100000"],
        capsys,
        watched=watched,
        names="seq_len",
        item=13,
    )
    expect_one_line(
        ["prepare", tiny_config(tmp_path), "--set", "model.seq_len=100000"],
        capsys,
        watched=watched,
        names="seq_len",
        item=13,
    )


# --- 15. the training loss of a resumed run -----------------------------------------------------


def test_train_loss_of_a_resumed_run_averages_every_step(tmp_path, cache):
    straight = train(load_run_config(_config(tmp_path / "a", cache, max_steps=8, save_steps=4)))
    config = _config(tmp_path / "b", cache, max_steps=8, save_steps=4)
    with pytest.raises(KeyboardInterrupt):
        train(load_run_config(config), callbacks=[StopAt(5, KeyboardInterrupt())])
    resumed = train(load_run_config(config))
    assert resumed.steps == straight.steps == 8
    # the steps before the checkpoint come from the logged losses, which the Trainer rounds to 4 decimals
    assert math.isclose(resumed.train_loss, straight.train_loss, abs_tol=1e-4), (
        resumed.train_loss,
        straight.train_loss,
    )
    summary = json.loads((tmp_path / "b" / "out" / "train_summary.json").read_text())
    assert math.isclose(summary["train_loss"], straight.train_loss, abs_tol=1e-4)
    record(15)


def test_train_api_validates_configs_built_in_code(tmp_path):
    run = load_run_config(tiny_config(tmp_path))
    run.train.batch_size = 0
    with pytest.raises(UserError, match="train.batch_size"):
        train(run)


def test_run_folder_follows_the_umask(tmp_path, cache):
    """14: final weights and checkpoints came out 0600 (transformers' writer), unreadable to a shared group."""
    import stat

    mask = os.umask(0o022)
    try:
        train(load_run_config(_config(tmp_path, cache)))
    finally:
        os.umask(mask)
    out = tmp_path / "out"
    for path in [out / "model.safetensors", out / "checkpoint-4", *(out / "checkpoint-4").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    record(14)
