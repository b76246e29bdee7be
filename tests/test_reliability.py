"""Reliability: the non-finite loss guard (skip and stop), absurd model sizes, and the prepared-data
cache under changed inputs and under two processes preparing it at once."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re

import pytest
import torch
import yaml
from conftest import TRAIN
from test_training import tiny_run
from transformers import TrainerCallback

from masked_mixers.cli import main
from masked_mixers.core.errors import UserError
from masked_mixers.data import prepare_data, train_tokenizer
from masked_mixers.data.prepare import load_prepared
from masked_mixers.runs.config import DataConfig, ModelSpec
from masked_mixers.runs.factory import build_model
from masked_mixers.training.distributed import single_process_launch
from masked_mixers.training.train import train

# --- non-finite loss guard ---------------------------------------------------------------------


class Snapshots(TrainerCallback):
    """The model's weights after each optimizer step."""

    def __init__(self, model):
        self.model, self.after = model, {}

    def on_step_end(self, args, state, control, **kwargs):
        self.after[state.global_step] = {k: v.clone() for k, v in self.model.state_dict().items()}


def test_skip_policy_drops_the_update_and_reports_the_step(tiny_prepared, tmp_path):
    run = tiny_run("mixer", tmp_path, max_steps=10, logging_steps=1, on_nonfinite="skip")
    model, _ = build_model(run.model, len(tiny_prepared.tokenizer))
    forwards = []

    def poison_fifth_loss(module, args, kwargs, output):  # a transient blow-up: only step 5's loss is NaN
        forwards.append(1)
        if len(forwards) == 5:
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(poison_fifth_loss, with_kwargs=True)
    snapshots = Snapshots(model)
    result = train(run, tiny_prepared, model=model, callbacks=[snapshots])

    assert result.steps == 10 and result.skipped_steps == [5]
    before, after = snapshots.after[4], snapshots.after[5]
    assert all(torch.equal(before[k], after[k]) for k in before), "the NaN step changed the weights"
    assert not all(torch.equal(after[k], snapshots.after[6][k]) for k in after), "training did not continue"
    assert all(torch.isfinite(v).all() for v in result.model.state_dict().values())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_step"] for r in records if "skipped_step" in r] == [5]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records if "loss" in r)
    assert json.loads((tmp_path / "train_summary.json").read_text())["skipped_steps"] == [5]


def _error_line(capsys) -> str:
    """The CLI's error: one line, the last on stderr (progress bars may come before it), no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    return err.strip().splitlines()[-1]


def _write_run_yaml(path, data: DataConfig, output_dir, **train):
    model = {"family": "mixer", "hidden_size": 32, "num_hidden_layers": 1, "seq_len": 64, "num_heads": 4}
    options = {"output_dir": str(output_dir), "eval_steps": 0, "logging_steps": 1, **train}
    path.write_text(yaml.safe_dump({"model": model, "data": dataclasses.asdict(data), "train": options}))
    return path


def test_stop_policy_is_one_line_naming_step_and_an_existing_checkpoint(
    tiny_data_config, tiny_prepared, tmp_path, capsys
):
    # a learning rate of 1e30 makes every weight ~1e30 after one Adam step: the loss overflows soon after
    config = _write_run_yaml(
        tmp_path / "run.yaml",
        tiny_data_config,
        tmp_path / "out",
        max_steps=20,
        learning_rate=1e30,
        warmup_steps=0,
        save_steps=1,
    )
    assert main(["train", str(config)]) == 2
    err = _error_line(capsys)
    match = re.fullmatch(
        r"masked-mixers train: error: step (\d+): loss is (nan|inf|-inf); last good checkpoint: (\S+)", err
    )
    assert match, err
    step, checkpoint = int(match[1]), match[3]
    assert os.path.isdir(checkpoint) and checkpoint.endswith(f"checkpoint-{step - 1}")


# --- absurd sizes ------------------------------------------------------------------------------


ABSURD = [dict(hidden_size=10**12), dict(hidden_size=60_000), dict(num_hidden_layers=10**9), dict(hidden_size=0)]


@pytest.mark.parametrize(
    "family, sizes",
    [(f, s) for f in ("mixer", "llama") for s in ABSURD] + [("mixer", dict(seq_len=10**7))],  # an L x L mixing matrix
)
def test_absurd_model_sizes_are_one_user_error(family, sizes):
    spec = ModelSpec(family=family, **{**dict(hidden_size=32, num_hidden_layers=1, seq_len=32, num_heads=4), **sizes})
    with pytest.raises(UserError) as err:
        build_model(spec, vocab_size=512)
    key = next(iter(sizes))
    assert key in str(err.value) and "\n" not in str(err.value)


def test_cli_huge_hidden_size_exits_2_in_one_line(tiny_data_config, tiny_prepared, tmp_path, capsys):
    config = _write_run_yaml(tmp_path / "run.yaml", tiny_data_config, tmp_path / "out", max_steps=1)
    assert main(["train", str(config), "--set", "model.hidden_size=1000000000000"]) == 2
    err = _error_line(capsys)
    assert err.startswith("masked-mixers train: error: model: cannot build mixer with hidden_size=1000000000000")


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA, FSDP is a valid choice")
def test_fsdp_on_cpu_is_refused_not_silently_ignored(tmp_path):
    run = tiny_run("mixer", tmp_path, fsdp=True, fsdp_config={"transformer_layer_cls_to_wrap": ["MixerBlock"]})
    with pytest.raises(UserError, match="train.fsdp: FSDP needs CUDA devices"):
        train(run)  # before any data is read (the refusal is the first thing after the config's own checks)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_launcher_that_started_one_of_several_processes_is_recognised():
    assert single_process_launch({"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1"})  # simple launcher
    assert not single_process_launch({"ACCELERATE_MIXED_PRECISION": "no"})  # accelerate launch, 1 process asked for
    assert not single_process_launch(
        {"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1", "WORLD_SIZE": "2"}
    )  # through torchrun (--multi_gpu)
    assert not single_process_launch({"MASTER_ADDR": "10.0.0.1"})  # a cluster's environment, no launcher


# --- prepared-data cache -----------------------------------------------------------------------


def _small_corpus(path, n=120):
    lines = TRAIN.read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _data(tmp_path, **overrides) -> DataConfig:
    return DataConfig(
        **{
            **dict(
                source=str(_small_corpus(tmp_path / "corpus.jsonl")), vocab_size=300, cache_dir=str(tmp_path / "cache")
            ),
            **overrides,
        }
    )


def _entries(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache" / "prepared").iterdir())


def test_changed_corpus_or_tokenizer_file_rebuilds_instead_of_mixing(tmp_path):
    tokenizer_file = tmp_path / "tokenizer.json"
    train_tokenizer(["once upon a time there was a cat"] * 20, 300).backend_tokenizer.save(str(tokenizer_file))
    data = _data(tmp_path, tokenizer=str(tokenizer_file))
    first = prepare_data(data, 32, progress=False)
    corpus = tmp_path / "corpus.jsonl"

    stat = corpus.stat()  # touched: same bytes, newer time -> rebuilt (size+mtime is the cheap identity)
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = prepare_data(data, 32, progress=False)
    assert not touched.reused and touched.cache_path != first.cache_path
    assert touched.train[:]["input_ids"].tolist() == first.train[:]["input_ids"].tolist()

    text = corpus.read_text(encoding="utf-8")  # same size, different content
    corpus.write_text(text.replace("once", "ONCE"), encoding="utf-8")
    assert corpus.stat().st_size == stat.st_size
    edited = prepare_data(data, 32, progress=False)
    assert not edited.reused and edited.cache_path not in (first.cache_path, touched.cache_path)
    assert edited.train[:]["input_ids"].tolist() != first.train[:]["input_ids"].tolist()

    train_tokenizer(["the dog ran to the park"] * 20, 280).backend_tokenizer.save(str(tokenizer_file))
    retokenized = prepare_data(data, 32, progress=False)  # same tokenizer path, new tokenizer
    assert not retokenized.reused and len(retokenized.tokenizer) != len(first.tokenizer)
    assert len({first.cache_path, touched.cache_path, edited.cache_path, retokenized.cache_path}) == 4
    for entry in _entries(tmp_path):  # each entry records what made it
        manifest = json.loads((tmp_path / "cache" / "prepared" / entry / "prepared.json").read_text())
        assert manifest["inputs"]["seq_len"] == 32 and manifest["inputs"]["tokenizer"]["files"]


def _prepare_racing(data: DataConfig, barrier, results):
    """In a child process: start preparing `data` at the same moment as the other child."""
    from masked_mixers.data import prepare as prepare_module

    barrier.wait(timeout=300)
    prepared = prepare_module.prepare_data(data, 32, progress=False)
    ids = prepared.train[:]["input_ids"].tolist()
    results.put((str(prepared.cache_path), prepared.reused, ids, prepared.tokenizer.get_vocab()))


def test_two_processes_preparing_one_cache_at_once(tmp_path):
    """One builds under the lock, the other waits for it and reuses its cache: never two builds in one work folder."""
    data = _data(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    children = [ctx.Process(target=_prepare_racing, args=(data, barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    (path_a, reused_a, ids_a, vocab_a), (path_b, reused_b, ids_b, vocab_b) = outcomes
    assert sorted([reused_a, reused_b]) == [False, True]
    assert path_a == path_b and ids_a == ids_b and vocab_a == vocab_b
    assert _entries(tmp_path) == [os.path.basename(path_a)]  # no temporary leftovers
    assert (
        load_prepared(tmp_path / "cache" / "prepared" / _entries(tmp_path)[0]).train[:]["input_ids"].tolist() == ids_a
    )
