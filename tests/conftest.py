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
