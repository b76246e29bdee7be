"""Continuous batching (serving/continuous.py), on the engine in-process with a tiny mixer.

A request that arrives while another decodes joins the running batch and finishes first when it is
shorter (static batching makes it wait for the long one); every request gets the text it gets alone
(greedy, with a repetition penalty, and seeded samples); families whose cache cannot hold rows at
different positions are served statically, and asking otherwise is one clear error.
"""

from __future__ import annotations

import threading

import pytest
import torch
from tinyrun import make_run, tokenizer

from masked_mixers.core.errors import UserError
from masked_mixers.generation import generate_text
from masked_mixers.runs.rundir import load_run
from masked_mixers.serving.engine import Engine, Job, Sampling, resolve_batching

LONG = 200  # tokens: past seq_len 32, so the long row also slides its window while others join and leave
SHORT = ["the dog", "a", "one day, a little girl named sue"]


@pytest.fixture(scope="module")
def mixer(tmp_path_factory):
    """The tiny mixer with its EOS logit held at 0, so greedy text runs to max_tokens."""
    model, tok = load_run(make_run(tmp_path_factory.mktemp("continuous") / "run", seq_len=32))
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.eos_token_id] = 0
    return model, tok


class Collector:
    """Texts and the order in which jobs ended, by key; `wait` until `count` jobs ended."""

    def __init__(self, count: int):
        self.texts, self.ended, self.count = {}, [], count
        self.started, self.all_done = threading.Event(), threading.Event()

    def job(self, key, prompt: str, **sampling) -> Job:
        def emit(event) -> None:
            if event.kind == "text":
                self.texts[key] = self.texts.get(key, "") + event.text
                self.started.set()
                return
            assert event.kind == "done", event
            self.ended.append(key)
            if len(self.ended) == self.count:
                self.all_done.set()

        seed = sampling.pop("seed", None)
        return Job(prompt, Sampling(**sampling), emit, seed=seed)

    def wait(self) -> None:
        assert self.all_done.wait(timeout=300), self.ended


def _run(model, tok, batching: str, compile: bool = False) -> tuple[Collector, Engine]:
    """A long greedy request, then (once it decodes) three short ones: who ends first, and each text."""
    out = Collector(1 + len(SHORT))
    engine = Engine(model, tok, max_batch_size=4, batching=batching, compile=compile).start()
    try:
        engine.submit([out.job("long", "once upon a time", max_tokens=LONG, temperature=0)])
        assert out.started.wait(timeout=120)
        engine.submit([out.job(p, p, max_tokens=6, temperature=0) for p in SHORT])
        out.wait()
    finally:
        engine.stop()
    return out, engine


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_a_request_joins_the_running_batch_and_gets_its_text_alone(mixer, compile):
    """Also through `serve --compile`'s step (serving/rows.py CompiledRows): its graphs, one per batch-size
    bucket, are all made before the engine starts, and serving (rows joining, leaving, sliding) makes no other."""
    from torch._dynamo.utils import counters

    model, tok = mixer
    counters.clear()
    out, engine = _run(model, tok, "continuous", compile)
    if compile:
        assert engine.compiled.buckets == [1, 2, 4] and counters["stats"]["unique_graphs"] == 3
    assert engine.batching == "continuous" and engine.batches_run == 1  # the short ones joined the running batch
    assert out.ended[-1] == "long", out.ended  # ... and finished while the long one still decoded
    assert out.texts["long"] == generate_text(model, tok, ["once upon a time"], LONG, greedy=True)[0]
    for prompt in SHORT:
        assert out.texts[prompt] == generate_text(model, tok, [prompt], 6, greedy=True)[0], prompt


def test_static_batching_makes_a_new_request_wait_for_the_running_batch(mixer):
    model, tok = mixer
    out, engine = _run(model, tok, "static")
    assert out.ended[0] == "long" and engine.batches_run == 2, out.ended
    for prompt in SHORT:
        assert out.texts[prompt] == generate_text(model, tok, [prompt], 6, greedy=True)[0], prompt


@pytest.mark.parametrize("compile", [False, True], ids=["eager", "compiled"])
def test_rows_sample_with_their_own_settings_and_seeds(mixer, compile):
    """One batch mixing a repetition penalty, greedy, and a seeded sample: each as it is alone."""
    model, tok = mixer

    def batch(keys: list[str]) -> dict:
        settings = {
            "penalty": dict(max_tokens=12, temperature=0, repetition_penalty=1.5),
            "greedy": dict(max_tokens=12, temperature=0),
            "seeded": dict(max_tokens=12, temperature=1.0, top_k=20, top_p=0.9, seed=7),
        }
        out = Collector(len(keys))
        engine = Engine(model, tok, max_batch_size=4, batching="continuous", compile=compile).start()
        try:
            engine.submit([out.job(key, "lily and tom went", **settings[key]) for key in keys])
            out.wait()
        finally:
            engine.stop()
        return out.texts

    together = batch(["penalty", "greedy", "seeded"])
    assert (
        together["penalty"]
        == generate_text(model, tok, ["lily and tom went"], 12, greedy=True, repetition_penalty=1.5)[0]
    )
    assert together["greedy"] == generate_text(model, tok, ["lily and tom went"], 12, greedy=True)[0]
    assert together["penalty"] != together["greedy"]  # the penalty acted
    assert batch(["seeded"])["seeded"] == together["seeded"]  # the seed alone decides the sample


def test_families_without_a_per_row_cache_are_served_statically():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer("left")
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        )
    )
    assert resolve_batching(llama, "auto") == "static"
    with pytest.raises(UserError, match="--batching continuous: the llama family"):
        resolve_batching(llama, "continuous")


def test_bench_serve_loads_every_mode_and_compares_their_texts(tmp_path, monkeypatch, capsys):
    """`bench serve` end to end on the tiny mixer: a fresh server per mode (the compiled one included), the table,
    the JSON, equal texts."""
    import json

    pytest.importorskip("uvicorn")
    pytest.importorskip("httpx")
    from clirun import ROOT, child_env

    from masked_mixers.cli import main

    for key, value in child_env().items():  # the servers are child processes of this one: this worktree's code
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT)
    run = make_run(tmp_path / "run", seq_len=32)
    out = tmp_path / "bench.json"
    args = ["bench", "serve", str(run), "--clients", "4", "--requests", "6", "--max-tokens", "4,40"]
    args += ["--modes", "static,continuous,compiled", "--max-batch-size", "2"]
    assert main([*args, "--repeats", "1", "--device", "cpu", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["table"]) == {"continuous", "static", "compiled"}
    assert {name: len(v) for name, v in result["throughput_ratios"].items()} == {
        "continuous/static": 1,
        "compiled/static": 1,
        "compiled/continuous": 1,
    }
    for row in result["table"].values():
        assert row["tokens_per_s"] > 0 and row["p99_s"] >= row["p50_s"] > 0 and row["server_cpu_s"] > 0
        assert row["ms_per_token"] > 0
    assert {r["mode"] for r in result["runs"]} == {"continuous", "static", "compiled"}
    assert "throughput compiled/static per repeat" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "not a model directory"),
        (["--max-tokens", "5,x"], "--max-tokens must be positive integers"),
        (["--modes", "continuous,fast"], "--modes must be distinct names"),
        (["--server-threads", "0"], "--server-threads must be >= 1"),
    ],
)
def test_bench_serve_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    from masked_mixers.cli import main

    run = str(tmp_path / "missing") if not extra else str(make_run(tmp_path / "run", seq_len=32))
    out = tmp_path / "bench.json"
    assert main(["bench", "serve", run, *extra, "--output", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()
