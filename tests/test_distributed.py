"""Real child processes of the CLI: 2-process DDP (torchrun, gloo on CPU) against 1 process with
the same global batch, the launch examples of `train --help` starting the processes they claim,
and a SIGKILLed run resumed to the exact weights of an uninterrupted one."""

from __future__ import annotations

import json
import re
import signal
import sys
import time

import pytest
import torch
from clirun import cli, finish, loss_curve, metrics, run, start, write_config
from safetensors.torch import load_file
from transformers.trainer_utils import get_last_checkpoint

from masked_mixers.commands import train as train_command
from masked_mixers.models import MaskedMixerForCausalLM
from masked_mixers.training.trainer import STAGING_DIR

LOSS_TOLERANCE = 1e-4  # absolute, per logged step: DDP all-reduces gradients in another summation order

pytestmark = pytest.mark.slow


def test_two_processes_with_batch_b_follow_one_process_with_batch_2b(tmp_path):
    cache = tmp_path / "cache"  # fresh: the two ranks must not both tokenize it
    config = write_config(tmp_path / "run.yaml", cache, tmp_path / "ddp")
    torchrun = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    log = run(cli("train", str(config), launcher=torchrun), tmp_path / "ddp.log")
    run(
        cli("train", str(config), "--set", "train.batch_size=16", "--output-dir", str(tmp_path / "one")),
        tmp_path / "one.log",
    )

    ddp, one = loss_curve(tmp_path / "ddp"), loss_curve(tmp_path / "one")
    assert sorted(ddp) == sorted(one) == list(range(1, 13))
    gap = max(abs(ddp[s] - one[s]) for s in one)
    print(f"DDP 2x8 vs 1x16: max |loss difference| over {len(one)} steps = {gap:.2e}")
    assert gap < LOSS_TOLERANCE
    a, b = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)

    # rank 0 alone writes: one summary line, one record per event, one prepared cache built once
    assert log.count("12 steps on 2 processes, train loss") == 1
    assert log.count("preparing: 0.00tok [") == 1, "both ranks tokenized the corpus"  # the bar a building process opens
    assert [r["step"] for r in metrics(tmp_path / "ddp") if "loss" in r] == list(range(1, 13))
    entries = sorted(p.name for p in (cache / "prepared").iterdir())
    assert len(entries) == 1 and not entries[0].startswith(".")


# how each launcher is started from Python, and the option that gives it a free port (tests run side by side)
LAUNCHERS = {
    "torchrun": ([sys.executable, "-m", "torch.distributed.run"], ["--standalone"]),
    "accelerate launch": ([sys.executable, "-m", "accelerate.commands.launch"], ["--main_process_port", "0"]),
}
ONE_PROCESS_WARNING = "warning: accelerate launch started 1 process"


def help_launches() -> dict[str, tuple[list[str], int]]:
    """{example line: (launcher argv, processes it claims)} for the launcher examples of `train --help`."""
    examples = {}
    for line in train_command.__doc__.splitlines():
        line = line.strip()
        for name, (argv, free_port) in LAUNCHERS.items():
            if line.startswith(name + " "):
                options = line[len(name) : line.index(" -m masked_mixers.cli train")].split()
                claimed = int(re.search(r"(?:--nproc_per_node[= ]|--num_processes )(\d+)", line)[1])
                examples[line] = ([*argv, *free_port, *options], claimed)
    return examples


def test_train_help_names_both_launchers():
    assert sorted(line.split(" -")[0] for line in help_launches()) == sorted(LAUNCHERS)


@pytest.mark.parametrize("example", sorted(help_launches()))
def test_help_launch_examples_start_the_processes_they_claim(tmp_path, example):
    launcher, claimed = help_launches()[example]
    config = write_config(tmp_path / "run.yaml", tmp_path / "cache", tmp_path / "out", max_steps=2)
    log = run(cli("train", str(config), launcher=tuple(launcher[1:])), tmp_path / "launch.log")
    summary = json.loads((tmp_path / "out" / "train_summary.json").read_text())
    assert summary["processes"] == claimed, f"{example!r} trained in {summary['processes']} process(es)"
    assert summary["tokens_seen"] == 2 * 8 * claimed * 32  # steps x batch x processes x L
    assert ONE_PROCESS_WARNING not in log


def test_accelerate_without_multi_gpu_warns_that_it_trains_one_process(tmp_path):
    """On a machine without CUDA, accelerate's own launcher starts `--num_processes 2` as 1 process."""
    config = write_config(tmp_path / "run.yaml", tmp_path / "cache", tmp_path / "out", max_steps=1)
    launcher = LAUNCHERS["accelerate launch"][0][1:] + ["--num_processes", "2"]
    log = run(cli("train", str(config), launcher=tuple(launcher)), tmp_path / "launch.log")
    assert json.loads((tmp_path / "out" / "train_summary.json").read_text())["processes"] == 1
    assert log.count(ONE_PROCESS_WARNING) == 1


def _kill_during_a_later_save(process, output_dir, timeout=240.0):
    """SIGKILL `process` once a checkpoint exists, preferably while the next one is being staged."""
    deadline, saving = time.monotonic() + timeout, False
    while time.monotonic() < deadline and process.poll() is None:
        if output_dir.is_dir() and get_last_checkpoint(str(output_dir)) and (output_dir / STAGING_DIR).exists():
            saving = True
            break
        time.sleep(0.002)
    assert process.poll() is None, "the run ended before it could be killed; raise max_steps"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return saving


def test_sigkilled_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path):
    options = dict(max_steps=32, save_steps=4, save_total_limit=2)
    cache = tmp_path / "cache"
    straight = write_config(tmp_path / "straight.yaml", cache, tmp_path / "straight", **options)
    victim = write_config(tmp_path / "victim.yaml", cache, tmp_path / "victim", **options)
    dropout = ("--set", "model.dropout=0.1")  # resume must restore the RNG streams, not only weights
    # both start at once and race to prepare the same data cache; the loser of the rename reads the winner's
    reference = start(cli("train", str(straight), *dropout), tmp_path / "straight.log")
    killed = start(cli("train", str(victim), *dropout), tmp_path / "killed.log")
    saving = _kill_during_a_later_save(killed, tmp_path / "victim")

    newest = get_last_checkpoint(str(tmp_path / "victim"))
    print(f"killed {'during a checkpoint save' if saving else 'between saves'}; newest complete: {newest}")
    MaskedMixerForCausalLM.from_pretrained(newest)  # loadable
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.load(f"{newest}/{name}", weights_only=False)
    finish(reference, tmp_path / "straight.log")
    run(cli("train", str(victim), *dropout), tmp_path / "resumed.log")

    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(tmp_path / "victim" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loss_curve(tmp_path / "victim") == loss_curve(tmp_path / "straight")  # no step twice, none missing
    assert not (tmp_path / "victim" / STAGING_DIR).exists()
