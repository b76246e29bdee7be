"""Fault-and-misuse suite, issue 24: config, data and option faults that gave tracebacks, a hang or
a silent result. Each is one line naming the file, key or option (exit 2) and writes nothing:
a YAML key written twice, a YAML alias bomb, seeds numpy and torch cannot take, a cache folder
that is a file, a corpus path that is a symlink loop or stops being UTF-8 while read, pairs that
no document gives, and a TCP port out of range. (Empty pair texts in embed / retrieve are in
test_faults_commands.py, which has a trained model at hand.)"""

from __future__ import annotations

import json

import pytest
from conftest import TRAIN
from faults import expect_one_line, tiny_config

ITEM = 24
BIG_SEED = "1180591620717411303424"  # 2**70


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_key_written_twice_is_refused_naming_key_file_and_line(tmp_path, capsys):
    config = tiny_config(tmp_path)
    text = config.read_text().replace("  max_steps: 12\n", "  max_steps: 12\n  max_steps: 2\n")
    _write(config, text)
    line = expect_one_line(
        ["train", config], capsys, watched=(tmp_path / "out", tmp_path / "cache"), names="'max_steps'", item=ITEM
    )
    number = text.splitlines().index("  max_steps: 2") + 1
    assert str(config) in line and f"line {number}" in line and "twice" in line


def test_yaml_section_written_twice_in_a_compare_config(tmp_path, capsys):
    path = _write(tmp_path / "c.yaml", "models: [{family: mixer}]\ntrain:\n  max_steps: 2\ntrain:\n  max_steps: 3\n")
    expect_one_line(["compare", path], capsys, names="'train' is written twice", item=ITEM)


def test_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys):
    config = tiny_config(tmp_path)
    levels = ['  a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = "model:\n" + "\n".join(levels) + "\n"  # 9**9 strings once expanded
    _write(config, bomb + config.read_text().split("data:", 1)[1].join(["data:", ""]))
    expect_one_line(["train", config], capsys, watched=(tmp_path / "out",), names="aliases", item=ITEM)


def test_set_value_with_a_repeated_key_is_refused(tmp_path, capsys):
    config = tiny_config(tmp_path)
    expect_one_line(
        ["train", config, "--set", "model={family: mixer, family: llama}"], capsys, names="--set", item=ITEM
    )


def test_set_value_like_an_undefined_alias_is_still_text():
    from masked_mixers.core.configfile import parse_override

    assert parse_override("data.source=*stories") == (["data", "source"], "*stories")


@pytest.mark.parametrize("value", [BIG_SEED, "-1", str(2**32)])
def test_train_seed_out_of_range(tmp_path, capsys, value):
    config = tiny_config(tmp_path)
    argv = ["train", config, "--set", f"train.seed={value}"]
    expect_one_line(argv, capsys, watched=(tmp_path / "out", tmp_path / "cache"), names="'train.seed'", item=ITEM)


def test_learning_rate_past_float32_is_one_line(tmp_path, capsys):
    """1e39 passed the finite check, then overflowed inside the optimizer (a traceback after data preparation)."""
    config = tiny_config(tmp_path)
    argv = ["train", config, "--set", "train.learning_rate=1e39"]
    expect_one_line(
        argv, capsys, watched=(tmp_path / "out", tmp_path / "cache"), names="'train.learning_rate'", item=ITEM
    )


def test_largest_seed_is_accepted():
    from masked_mixers.core.configfile import from_dict
    from masked_mixers.runs.config import RunConfig

    run = from_dict(RunConfig, {"model": {"family": "mixer"}, "train": {"seed": 2**32 - 1}}, "x.yaml")
    assert run.train.seed == 2**32 - 1


def test_compare_sample_seed_out_of_range(tmp_path, capsys):
    path = _write(tmp_path / "c.yaml", f"report:\n  sample_seed: {BIG_SEED}\n")
    expect_one_line(["compare", path], capsys, names="'report.sample_seed'", item=ITEM)


def _seed_argv(command: str, tmp_path) -> list:
    missing = tmp_path / "no-model"  # the seed is checked before the model is looked at
    stories = _write(
        tmp_path / "docs.txt", "\n\n".join(json.loads(line)["text"] for line in TRAIN.read_text().splitlines()[:40])
    )
    return {
        "generate": ["generate", missing, "--prompt", "a", "--seed", BIG_SEED],
        "represent": [
            "represent",
            missing,
            "--ids",
            tmp_path / "ids.json",
            "--seed",
            BIG_SEED,
            "--out",
            tmp_path / "r",
        ],
        "lm-eval": ["lm-eval", missing, "--tasks", "x", "--seed", BIG_SEED],
        "pairs": ["pairs", stories, "--seed", BIG_SEED, "--out", tmp_path / "r"],
    }[command]


@pytest.mark.parametrize("command", ["generate", "represent", "lm-eval", "pairs"])
def test_seed_option_out_of_range(tmp_path, capsys, command):
    (tmp_path / "ids.json").write_text("[[5, 6, 7]]")
    expect_one_line(_seed_argv(command, tmp_path), capsys, watched=(tmp_path / "r",), names="--seed", item=ITEM)


def test_cache_dir_that_is_a_file(tmp_path, capsys):
    blocker = _write(tmp_path / "cache", "mine\n")
    config = tiny_config(tmp_path, cache=blocker)
    expect_one_line(["prepare", config], capsys, watched=(blocker,), names="data.cache_dir", item=ITEM)


def test_corpus_that_is_a_symlink_loop(tmp_path, capsys):
    (tmp_path / "a.txt").symlink_to(tmp_path / "b.txt")
    (tmp_path / "b.txt").symlink_to(tmp_path / "a.txt")
    config = tiny_config(tmp_path)
    argv = ["prepare", config, "--set", f"data.source={tmp_path / 'a.txt'}"]
    expect_one_line(argv, capsys, watched=(tmp_path / "cache",), names=str(tmp_path / "a.txt"), item=ITEM)


def test_corpus_that_stops_being_utf8_while_read(tmp_path, capsys, monkeypatch):
    """The file passes the UTF-8 scan, then gains an invalid line (appended by another program)."""
    import masked_mixers.data.stream as stream

    lines = [json.loads(line)["text"] for line in TRAIN.read_text().splitlines()[:300]]
    corpus = _write(tmp_path / "stories.txt", "\n\n".join(lines) + "\n")
    scan = stream._scan_text_file

    def scan_then_append(path):
        found = scan(path)
        if path == corpus:
            with corpus.open("ab") as handle:
                handle.write(b"\n\nthe end \xff\xfe\n")
        return found

    monkeypatch.setattr(stream, "_scan_text_file", scan_then_append)
    config = tiny_config(tmp_path)
    argv = ["prepare", config, "--set", f"data.source={corpus}", "--set", "data.max_documents=null"]
    line = expect_one_line(argv, capsys, names=f"{corpus}: not valid UTF-8", item=ITEM)
    assert "at or after line" in line  # the file and where: not the scan's message, the reader's
    assert not any(p.is_dir() and not p.name.startswith(".") for p in (tmp_path / "cache" / "prepared").glob("*"))


def test_keyword_pairs_from_one_word_documents(tmp_path, capsys):
    source = _write(tmp_path / "words.txt", "hello\n\nworld\n\nagain\n")
    argv = ["pairs", source, "--kind", "keywords", "--out", tmp_path / "r"]
    expect_one_line(argv, capsys, watched=(tmp_path / "r",), names="no keywords pairs", item=ITEM)


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_serve_port_out_of_range(tmp_path, capsys, port):
    expect_one_line(["serve", tmp_path / "no-model", "--port", port], capsys, names="--port", item=ITEM)


@pytest.mark.parametrize("flag", ["--max-queue", "--request-timeout", "--max-body-bytes", "--shutdown-grace"])
def test_serve_cap_not_positive(tmp_path, capsys, flag):
    """A cap of 0 is refused before the model loads (RUN_DIR does not exist), naming the flag."""
    expect_one_line(["serve", tmp_path / "no-model", flag, "0"], capsys, names=f"{flag}: must be > 0", item=ITEM)


def test_serve_threads_not_positive(tmp_path, capsys):
    expect_one_line(
        ["serve", tmp_path / "no-model", "--threads", "0"], capsys, names="--threads: must be >= 1", item=ITEM
    )
