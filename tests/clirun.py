"""Run the real `masked-mixers` CLI in child processes (plain, torchrun) on a tiny TinyStories config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import TRAIN, VALID

ROOT = Path(__file__).resolve().parents[1]


def write_config(path: Path, cache_dir: Path, output_dir: Path, **train) -> Path:
    """A mixer of d=32, 2 layers, L=32 on 300 stories (vocab 512); `train` overrides the train section."""
    config = {
        "model": {"family": "mixer", "hidden_size": 32, "num_hidden_layers": 2, "seq_len": 32, "num_heads": 4},
        "data": {
            "source": str(TRAIN),
            "eval_source": str(VALID),
            "max_documents": 300,
            "max_eval_documents": 40,
            "vocab_size": 512,
            "cache_dir": str(cache_dir),
        },
        "train": {
            "output_dir": str(output_dir),
            "max_steps": 12,
            "batch_size": 8,
            "learning_rate": 0.005,
            "warmup_steps": 2,
            "eval_steps": 0,
            "save_steps": 0,
            "logging_steps": 1,
            "max_eval_batches": 2,
            **train,
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def child_env() -> dict:
    """One thread per process (2 shared cores; also makes float reductions repeatable) and this worktree's code."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}


def cli(*args: str, launcher: tuple[str, ...] = ()) -> list[str]:
    """The command line of `masked-mixers ARGS`, optionally under a launcher such as torchrun."""
    if launcher:
        return [sys.executable, *launcher, "-m", "masked_mixers.cli", *args]
    return [sys.executable, "-m", "masked_mixers.cli", *args]


def start(command: list[str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=handle, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    """Wait for `process`; fail with the tail of its log unless it exited 0."""
    rc = process.wait(timeout=timeout)
    text = log.read_text(errors="replace")
    assert rc == 0, f"exit {rc}:\n{text[-3000:]}"
    return text


def run(command: list[str], log: Path, timeout: float = 300) -> str:
    return finish(start(command, log), log, timeout)


def metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


def loss_curve(output_dir: Path) -> dict[int, float]:
    """step -> logged training loss, failing on a step logged twice."""
    records = [r for r in metrics(output_dir) if "loss" in r]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"duplicate steps in metrics.jsonl: {steps}"
    return {r["step"]: r["loss"] for r in records}
