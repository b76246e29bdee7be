"""Fault-and-misuse suite, every other command (issue 16 items 6-8, 10-12, 14, 15): damaged model
folders and bad output paths through eval, generate, represent, embed, retrieve (and the output
options of pairs, compare, ablate, bench), files written through links and devices, no code run
from a model folder, and the smaller range checks."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess

import pytest
import torch
from conftest import VALID
from faults import copy_model, expect_one_line, record, tiny_config

from masked_mixers.cli import main
from masked_mixers.runs.config import load_run_config
from masked_mixers.training.train import train

COMMANDS = ("eval", "generate", "represent", "embed", "retrieve")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A trained tiny mixer, a pairs folder and a token-id file, shared by the module."""
    root = tmp_path_factory.mktemp("faults")
    train(load_run_config(tiny_config(root, max_steps=2)))
    stories = [json.loads(line)["text"] for line in VALID.read_text(encoding="utf-8").splitlines()[:80]]
    pairs = [{"query": s.split(".")[0], "passage": s, "doc_id": i} for i, s in enumerate(stories)]
    (root / "pairs").mkdir()
    (root / "pairs" / "train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs[:40]))
    (root / "pairs" / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs[40:]))
    (root / "ids.json").write_text(json.dumps([[5, 6, 7, 8], [9, 10, 11, 12]]))
    return root


def _argv(command: str, model, work, out) -> list:
    """`command` on `model`, writing to `out` (a path that must not appear when the command refuses)."""
    return {
        "eval": ["eval", model, "--data", VALID, "--max-documents", "4", "--json", out],
        "generate": ["generate", model, "--prompt", "once upon", "--max-new-tokens", "2"],
        "represent": ["represent", model, "--ids", work / "ids.json", "--steps", "2", "--out", out],
        "embed": ["embed", model, "--pairs", work / "pairs" / "test.jsonl", "--out", out],
        "retrieve": [
            "retrieve",
            "--mixer",
            model,
            "--transformer",
            work / "out",
            "--pairs",
            work / "pairs",
            "--out",
            out,
            "--methods",
            "cosine",
        ],
    }[command]


# --- 8. damaged model folders ------------------------------------------------------------------


def _truncate(d):
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def _pickle_instead(d):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {d / 'PWNED'}",))

    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(pickle.dumps({"x": Payload()}))


def _config_edit(**changes):
    def damage(d):
        config = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**config, **changes}))

    return damage


DAMAGES = {
    "truncated weights": _truncate,
    "empty weights": lambda d: (d / "model.safetensors").write_bytes(b""),
    "no weights": lambda d: (d / "model.safetensors").unlink(),
    "config not JSON": lambda d: (d / "config.json").write_text("{not json"),
    "config not an object": lambda d: (d / "config.json").write_text("[1, 2]"),
    "wider config than weights": _config_edit(hidden_size=64),
    "deeper config than weights": _config_edit(num_hidden_layers=3),
    "refused pickle": _pickle_instead,
    "no config": lambda d: (d / "config.json").unlink(),
}


@pytest.mark.parametrize("damage", DAMAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_damaged_model_folder_is_one_line_and_writes_nothing(work, tmp_path, capsys, command, damage):
    model = copy_model(work / "out", tmp_path / "model")
    DAMAGES[damage](model)
    out = tmp_path / "result"
    expect_one_line(_argv(command, model, work, out), capsys, watched=(out,), names=str(model), item=8)
    assert not (model / "PWNED").exists()


# --- 7. no code from a model folder -------------------------------------------------------------


@pytest.mark.parametrize("model_type", [None, "evil_mixer"])
def test_auto_map_code_is_never_run_without_trust_remote_code(work, tmp_path, capsys, model_type):
    model = copy_model(work / "out", tmp_path / "model")
    marker = tmp_path / "RAN"
    (model / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import PretrainedConfig as EvilConfig\n"
    )
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilConfig"}
    if model_type:
        config["model_type"] = model_type
    (model / "config.json").write_text(json.dumps(config))
    rc = main(["generate", str(model), "--prompt", "once", "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert not marker.exists(), "the model folder's code ran"
    assert rc == 0 if model_type is None else (rc == 2 and "Traceback" not in err and "error:" in err)
    record(7)


# --- 6 and 10. output paths ---------------------------------------------------------------------


def _device(tmp_path, name: str, minor: int):
    """A private character device (1, minor: 3 null, 7 full) so that a regression that replaces the
    destination with a regular file breaks only this node, never the machine's /dev/null or /dev/full
    (which the code before issue 16 did, as root)."""
    path = tmp_path / name
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("creating device nodes needs root")
    return path


def test_json_written_through_a_symlink_and_into_a_device(work, tmp_path, capsys):
    target = tmp_path / "real.json"
    target.write_text("{}")
    (tmp_path / "link.json").symlink_to(target)
    base = ["eval", str(work / "out"), "--data", str(VALID), "--max-documents", "4", "--json"]
    assert main([*base, str(tmp_path / "link.json")]) == 0
    assert (tmp_path / "link.json").is_symlink() and json.loads(target.read_text())["tokens"] > 0
    null = _device(tmp_path, "null", 3)
    assert main([*base, str(null)]) == 0
    assert stat.S_ISCHR(os.stat(null).st_mode)
    record(6)


def _bad_outputs(tmp_path):
    (tmp_path / "a_file").write_text("x")
    return {
        "under a file": tmp_path / "a_file" / "x",
        "full device": _device(tmp_path, "full", 7),
        "a folder": tmp_path,
    }


@pytest.mark.parametrize("where", ["under a file", "full device"])
@pytest.mark.parametrize("command", ["eval", "embed"])
def test_bad_output_file_is_one_line(work, tmp_path, capsys, command, where):
    out = _bad_outputs(tmp_path)[where]
    expect_one_line(_argv(command, work / "out", work, out), capsys, watched=(tmp_path / "a_file",), item=10)
    assert where != "full device" or stat.S_ISCHR(os.stat(out).st_mode)


@pytest.mark.parametrize(
    "argv",
    [
        ["represent", "{model}", "--ids", "{work}/ids.json", "--steps", "2", "--out", "{file}"],
        ["retrieve", "--mixer", "{model}", "--transformer", "{model}", "--pairs", "{work}/pairs", "--out", "{file}"],
        ["pairs", str(VALID), "--max-documents", "20", "--out", "{file}"],
        ["ablate", "{config}", "--out", "{file}"],
        ["compare", "{compare}", "--output-dir", "{file}"],
        ["bench", "train", "--json", "{file}/x.json"],
        ["eval", "{model}", "--json", "{tmp}"],
    ],
    ids=lambda argv: argv[0] + ("-" + argv[1] if argv[0] == "bench" else ""),
)
def test_output_path_that_is_a_file_is_one_line_before_work(work, tmp_path, capsys, argv):
    (tmp_path / "a_file").write_text("x")
    compare = tmp_path / "compare.yaml"
    compare.write_text("models: [{family: mixer, hidden_size: 32, num_hidden_layers: 1, seq_len: 32}]\n")
    fill = dict(
        model=work / "out",
        work=work,
        file=tmp_path / "a_file",
        config=tiny_config(tmp_path),
        compare=compare,
        tmp=tmp_path,
    )
    expect_one_line(
        [a.format(**fill) for a in argv], capsys, watched=(tmp_path / "a_file", tmp_path / "cache"), item=10
    )


# --- 11, 12, 14, 15: ranges and shapes ------------------------------------------------------------


@pytest.mark.parametrize("n", ["0", "-3"])
def test_eval_max_batches_below_one(work, capsys, n):
    expect_one_line(["eval", work / "out", "--data", VALID, "--max-batches", n], capsys, names="--max-batches", item=11)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n"])
def test_compare_top_level_not_a_mapping(tmp_path, capsys, text):
    (tmp_path / "c.yaml").write_text(text)
    expect_one_line(["compare", tmp_path / "c.yaml"], capsys, names="expected a mapping", item=12)


def _pair_file(tmp_path, data: bytes):
    (tmp_path / "p.jsonl").write_bytes(data)
    return tmp_path / "p.jsonl"


SMALL = [
    (
        "generate --temperature nan",
        lambda w, t: ["generate", w / "out", "--prompt", "a", "--temperature", "nan"],
        "sampling",
    ),
    (
        "represent negative ids",
        lambda w, t: ["represent", w / "out", "--ids", _ids(t, [[3, -1]]), "--out", t / "r"],
        "token ids",
    ),
    (
        "represent --steps 0",
        lambda w, t: ["represent", w / "out", "--ids", w / "ids.json", "--steps", "0", "--out", t / "r"],
        "--steps",
    ),
    (
        "represent --blocks 99",
        lambda w, t: [
            "represent",
            w / "out",
            "--ids",
            w / "ids.json",
            "--steps",
            "1",
            "--blocks",
            "99",
            "--out",
            t / "r",
        ],
        "--blocks",
    ),
    (
        "embed --max-length 0",
        lambda w, t: ["embed", w / "out", "--pairs", w / "pairs" / "test.jsonl", "--max-length", "0", "--out", t / "r"],
        "--max-length",
    ),
    (
        "retrieve --candidates 0 -5",
        lambda w, t: [
            "retrieve",
            "--mixer",
            w / "out",
            "--transformer",
            w / "out",
            "--pairs",
            w / "pairs",
            "--out",
            t / "r",
            "--candidates",
            "0",
            "-5",
        ],
        "--candidates",
    ),
    (
        "pairs doc_id not an integer",
        lambda w, t: [
            "pairs",
            _pair_file(t, b'{"query": "a", "passage": "b", "doc_id": "x"}\n'),
            "--kind",
            "file",
            "--out",
            t / "r",
        ],
        "doc_id",
    ),
    (
        "pairs not UTF-8",
        lambda w, t: [
            "pairs",
            _pair_file(t, b'{"query": "\xff\xfe", "passage": "b"}\n'),
            "--kind",
            "file",
            "--out",
            t / "r",
        ],
        "UTF-8",
    ),
    (
        "embed pairs not UTF-8",
        lambda w, t: ["embed", w / "out", "--pairs", _pair_file(t, b"\xff\n"), "--out", t / "r"],
        "UTF-8",
    ),
    (
        "ablate --divergence-factor 0",
        lambda w, t: ["ablate", tiny_config(t), "--divergence-factor", "0", "--out", t / "r"],
        "--divergence-factor",
    ),
    ("bench --device cuda", lambda w, t: ["bench", "train", "--device", "cuda", "--json", t / "r"], "cuda"),
]


def _ids(tmp_path, rows):
    (tmp_path / "ids.json").write_text(json.dumps(rows))
    return tmp_path / "ids.json"


@pytest.mark.parametrize("name, make, names", SMALL, ids=[c[0] for c in SMALL])
def test_smaller_mistakes_are_one_line_and_write_nothing(work, tmp_path, capsys, name, make, names):
    if name == "bench --device cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    item = 15 if name in ("represent --steps 0", "represent --blocks 99", "embed --max-length 0") else 14
    expect_one_line(make(work, tmp_path), capsys, watched=(tmp_path / "r", tmp_path / "cache"), names=names, item=item)


def test_cache_entries_follow_the_umask_and_killed_builds_are_removed(tmp_path):
    from masked_mixers.data import prepare_data

    run = load_run_config(tiny_config(tmp_path))
    prepared_root = tmp_path / "cache" / "prepared"
    prepared_root.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = prepared_root / f".entry.{os.uname().nodename}.{dead.pid}.abcd1234.tmp"
    leftover.mkdir()
    mask = os.umask(0o022)
    try:
        prepared = prepare_data(run.data, 32, progress=False)
    finally:
        os.umask(mask)
    assert not leftover.exists()
    for path in [prepared.cache_path, *prepared.cache_path.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    record(14)
    record(15)


def _empty_test_passages(work, tmp_path):
    """A pairs folder whose train pairs are fine and whose every test passage is empty."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    (folder / "train.jsonl").write_bytes((work / "pairs" / "train.jsonl").read_bytes())
    (folder / "test.jsonl").write_text('{"query": "a dog", "passage": ""}\n{"query": "a cat", "passage": "  "}\n')
    return folder


EMPTY_TEXTS = [  # issue 24: nothing to embed used to be a traceback
    (
        "embed, every query empty",
        lambda w, t: [
            "embed",
            w / "out",
            "--pairs",
            _pair_file(t, b'{"query": "", "passage": "b"}\n{"query": " ", "passage": "c"}\n'),
            "--out",
            t / "r",
        ],
        "'query' is empty",
    ),
    (
        "retrieve, every test passage empty",
        lambda w, t: [
            "retrieve",
            "--mixer",
            w / "out",
            "--transformer",
            w / "out",
            "--pairs",
            _empty_test_passages(w, t),
            "--out",
            t / "r",
            "--methods",
            "cosine",
        ],
        "test.jsonl:1: field 'passage' is empty",
    ),
]


@pytest.mark.parametrize("name, make, names", EMPTY_TEXTS, ids=[c[0] for c in EMPTY_TEXTS])
def test_empty_pair_texts_are_one_line(work, tmp_path, capsys, name, make, names):
    expect_one_line(make(work, tmp_path), capsys, watched=(tmp_path / "r",), names=names, item=24)
