"""scripts/gpu-check.sh is complete on a machine without a GPU: its syntax, and every flag it hands
to masked-mixers and pytest exists; the training speed switches reach TrainingArguments."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import torch

from masked_mixers.cli import build_parser
from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import RunConfig, TrainConfig, load_run_config, save_yaml
from masked_mixers.training.train import training_arguments

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"


def _commands(prefix: str) -> list[list[str]]:
    """The script's command lines that start with `prefix`, continuations joined, variables filled in."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    lines = [
        line.split(prefix, 1)[1] for line in text.splitlines() if prefix in line and not line.lstrip().startswith("#")
    ]
    return [shlex.split(re.sub(r"\$\{?[A-Z_]+\}?", "X", line)) for line in lines]


def test_script_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_every_masked_mixers_call_parses():
    calls = _commands('"${MM[@]}"')
    assert {c[0] for c in calls} == {"bench", "compare"} and len(calls) == 4
    assert {c[1] for c in calls if c[0] == "bench"} == {"train", "generate"}
    for argv in calls:
        args = build_parser(argv[0]).parse_args(argv)  # argparse exits (SystemExit) on an unknown flag
        assert args.command == argv[0]
    train = build_parser("bench").parse_args(calls[0])
    assert train.d_models == [512, 1024] and train.layers == 8 and train.seq_lens == [512] and train.batch_size == 32
    assert train.dtypes == ["fp32", "bf16"] and train.llama_attention == "sdpa"
    generate = next(build_parser("bench").parse_args(c) for c in calls if c[:2] == ["bench", "generate"])
    assert generate.batch_sizes == [1, 32] and generate.compile
    assert generate.prompt_tokens + generate.new_tokens <= generate.seq_len  # what --compile requires


def test_compare_overrides_are_valid_keys(tmp_path):
    argv = next(c for c in _commands('"${MM[@]}"') if c[0] == "compare")
    sets = [v for flag, v in zip(argv, argv[1:]) if flag == "--set"]
    from masked_mixers.compare.config import load_compare_config

    config = load_compare_config(ROOT / argv[1], sets)
    assert config.train.max_steps == 300


def test_pytest_marker_is_registered():
    out = subprocess.run(
        ["python3", "-m", "pytest", "--markers"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "@pytest.mark.cuda" in out
    assert ["-m", "cuda"] == _commands("python3 -m pytest -q")[0][:2]


def test_speed_switches_reach_training_arguments(tmp_path):
    run = RunConfig(
        train=TrainConfig(output_dir=str(tmp_path), torch_compile=True, optimizer="adamw", num_workers=None)
    )
    save_yaml(run, tmp_path / "run.yaml")
    back = load_run_config(tmp_path / "run.yaml")
    assert back.train.torch_compile and back.train.optimizer == "adamw" and back.train.num_workers is None
    args = training_arguments(back, has_eval=False)
    cuda = torch.cuda.is_available()
    assert args.torch_compile and args.optim == ("adamw_torch_fused" if cuda else "adamw_torch")  # fused on CUDA only
    assert args.dataloader_num_workers == (4 if cuda else 0) and args.dataloader_pin_memory == cuda
    assert not args.logging_nan_inf_filter  # "stop" checks at sync points, not every step
    (tmp_path / "bad.yaml").write_text("train:\n  optimizer: lion\n")
    with pytest.raises(UserError, match="train.optimizer"):
        load_run_config(tmp_path / "bad.yaml")
    with pytest.raises(UserError, match="train.num_workers"):
        training_arguments(RunConfig(train=TrainConfig(output_dir=str(tmp_path), num_workers=-1)), has_eval=False)
