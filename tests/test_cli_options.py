"""The command line as a whole: help and defaults for every option, one output spelling, --device,
--version, `python -m masked_mixers`, and a top-level --help that never imports torch."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import torch
from clirun import ROOT, child_env

import masked_mixers
import masked_mixers_entry
from masked_mixers.cli import COMMANDS, build_parser, main
from masked_mixers.core.devices import resolve_device
from masked_mixers.core.errors import UserError


def _command_parser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


def _walk(parser: argparse.ArgumentParser, path: str):
    """(path, action) for every action of `parser` and of its subcommands (bench NAME), recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def _all_actions():
    for command in COMMANDS:
        yield from _walk(_command_parser(command), command)


def test_the_walk_reaches_nested_commands():
    paths = {path for path, _ in _all_actions()}
    assert {"bench train", "bench generate", "bench linear", "generate", "serve", "lm-eval"} <= paths


def test_every_option_and_argument_has_help():
    missing = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, action in _all_actions()
        if not isinstance(action, argparse._HelpAction)
        and action.help != argparse.SUPPRESS
        and not (action.help or "").strip()
    ]
    assert not missing, "options without help text:\n" + "\n".join(missing)


def test_help_shows_defaults_and_hides_deprecated_spellings(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    out = capsys.readouterr().out
    assert "tokens to generate per prompt (fewer if EOS comes first) (default: 100)" in " ".join(out.split())
    assert "(default: None)" not in out and "(default: False)" not in out
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "--output FILE" in out and "--json" not in out


def test_one_output_spelling_per_kind():
    """Files are written with --output, folders with --output-dir, in every command."""
    spellings = {
        s for _, action in _all_actions() for s in action.option_strings if s.startswith("--out") or s == "--json"
    }
    shown = {
        s
        for _, action in _all_actions()
        for s in action.option_strings
        if s in spellings and s not in getattr(action, "deprecated_aliases", ())
    }
    assert shown == {"--output", "--output-dir"}
    for path, action in _all_actions():
        if "--output" in action.option_strings:
            assert action.metavar == "FILE", path
        if "--output-dir" in action.option_strings:
            assert action.metavar == "DIR", path


def test_old_output_spellings_still_work_with_a_note(capsys):
    args = build_parser("eval").parse_args(["eval", "runs/x", "--json", "m.json"])
    assert args.output == "m.json"
    assert "--json is deprecated, use --output" in capsys.readouterr().err
    args = build_parser("embed").parse_args(["embed", "runs/x", "--pairs", "p.jsonl", "--out", "e.safetensors"])
    assert args.out == "e.safetensors"  # a required output given by its old spelling satisfies the requirement
    assert "--out is deprecated, use --output" in capsys.readouterr().err
    args = build_parser("pairs").parse_args(["pairs", "c.jsonl", "--output-dir", "p"])
    assert args.out == "p" and capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        build_parser("pairs").parse_args(["pairs", "c.jsonl"])
    assert "--output-dir" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["eval", "generate", "represent", "embed", "retrieve", "lm-eval", "serve"])
def test_every_command_that_runs_a_model_takes_a_device(command):
    assert any("--device" in action.option_strings for _, action in _walk(_command_parser(command), command))


def test_every_benchmark_takes_a_device():
    benches = {path for path, action in _walk(_command_parser("bench"), "bench") if "--device" in action.option_strings}
    assert benches == {"bench train", "bench generate", "bench linear", "bench serve"}


def test_device_names_resolve_or_fail_in_one_line():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    for bad in ("gpu0", "tpu", "cuda:x"):
        with pytest.raises(UserError, match="--device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_version_is_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        masked_mixers_entry.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"masked-mixers {masked_mixers.__version__}"


def test_top_level_help_imports_neither_torch_nor_the_package():
    code = (
        "import sys, masked_mixers_entry\n"
        "try:\n    masked_mixers_entry.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('IMPORTED', sorted(m for m in ('torch', 'transformers', 'masked_mixers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60
    ).stdout
    assert "IMPORTED []" in out and all(name in out for name in COMMANDS)


def test_python_dash_m_masked_mixers_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "masked_mixers", "generate", "--help"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: masked-mixers generate" in done.stdout and "--device" in done.stdout
