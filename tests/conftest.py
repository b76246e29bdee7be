"""Shared fixtures: the real data in ../shared/data, one small prepared TinyStories slice, and the
switches several test files need (one torch thread, a private datasets cache).

Test files import the data paths from here (`from conftest import TRAIN`) rather than spelling them.
"""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
TRAIN = SHARED / "tinystories" / "train-lowercase.jsonl"
VALID = SHARED / "tinystories" / "valid-lowercase.jsonl"

# Keep test runs off the user's caches and quiet.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads; on a shared 2-core machine idle worker threads only spin.
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def datasets_cache(tmp_path_factory, monkeypatch):
    """Keep datasets' own builder cache (and its progress bars) out of the user's home directory."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.getbasetemp() / "hf-datasets"))
    datasets.disable_progress_bars()


@pytest.fixture(scope="session")
def tiny_data_config(tmp_path_factory):
    """A DataConfig over a real TinyStories slice: 1,500 stories, vocabulary 1024, L=64."""
    from masked_mixers.runs.config import DataConfig

    return DataConfig(
        source=str(TRAIN),
        eval_source=str(VALID),
        max_documents=1500,
        max_eval_documents=120,
        vocab_size=1024,
        cache_dir=str(tmp_path_factory.mktemp("mm-cache")),
    )


@pytest.fixture(scope="session")
def tiny_prepared(tiny_data_config):
    """Prepared once per test session (the cache makes later calls cheap)."""
    from masked_mixers.data import prepare_data

    return prepare_data(tiny_data_config, seq_len=64, progress=False)


# --- retrieval: real stories and a tiny saved mixer and Llama (test_retrieval.py, test_retrieval_f5.py) ---


@pytest.fixture(scope="module")
def stories() -> list[str]:
    import json

    lines = TRAIN.read_text(encoding="utf-8").splitlines()[:400]
    return [json.loads(line)["text"] for line in lines]


def bpe_tokenizer(texts: list[str]):
    """A tiny byte-level BPE trained on the fly, wrapped for transformers with pad and eos."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>"], show_progress=False)
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, stories) -> dict[str, Path]:
    """A tiny random mixer and Llama, each saved with its tokenizer beside it."""
    import torch

    from masked_mixers.runs.config import ModelSpec
    from masked_mixers.runs.factory import build_model

    tokenizer = bpe_tokenizer(stories)
    dirs = {}
    for family in ("mixer", "llama"):
        torch.manual_seed(0)
        spec = ModelSpec(family=family, hidden_size=32, num_hidden_layers=2, seq_len=48, num_heads=2)
        model, _ = build_model(
            spec, len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
        )
        dirs[family] = tmp_path_factory.mktemp(family)
        model.save_pretrained(dirs[family])
        tokenizer.save_pretrained(dirs[family])
    return dirs


def pytest_terminal_summary(terminalreporter):
    """The fault suite's outcome table (tests/faults.py), when it ran: issue item -> outcome -> count."""
    import sys

    faults = sys.modules.get("faults")
    if faults is None or not faults.OUTCOMES:
        return
    table = {}
    for (item, outcome), count in faults.OUTCOMES.items():
        table.setdefault(item, {}).setdefault(outcome, 0)
        table[item][outcome] += count
    terminalreporter.write_sep("-", "fault suite outcomes (issue 16 item: outcome counts)")
    for item in sorted(table, key=lambda i: (i is None, i or 0)):
        terminalreporter.write_line(f"item {item}: " + ", ".join(f"{k} {v}" for k, v in sorted(table[item].items())))
    totals = {}
    for (_, outcome), count in faults.OUTCOMES.items():
        totals[outcome] = totals.get(outcome, 0) + count
    terminalreporter.write_line("total: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))


# --- a Python that cannot import this package (tests/test_hub.py, tests/test_remote_code.py) ---

BLOCK_PACKAGE = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "masked_mixers" or name.startswith("masked_mixers."):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Block())
sys.path = [p for p in sys.path if p not in ("", ".")]
try:
    import masked_mixers
except ImportError:
    pass
else:
    raise SystemExit("masked_mixers is importable")
"""


def run_without_package(script: str, *args, cwd: Path, timeout: float = 300):
    """Run `script` in a fresh Python whose import system refuses masked_mixers: offline, stdin closed
    (a prompt would read end-of-file), transformers' module cache under `cwd`. Fails the test on a non-zero exit."""
    import subprocess
    import sys
    import textwrap

    env = {**os.environ, "HF_MODULES_CACHE": str(cwd / "modules"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_PACKAGE + textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done
