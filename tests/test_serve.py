"""`masked-mixers serve`: a real server process on 127.0.0.1, spoken to with a real HTTP client (httpx).

Every answer is checked against `generate_text` run here, one prompt at a time, on the same run
directory: greedy completions, concurrent requests (batched by the server), streaming, stop
strings, seeds, and 400s for bad requests after which the server still answers.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serverproc import serve  # noqa: E402
from tinyrun import make_run, stories  # noqa: E402

from masked_mixers.generation import generate_text  # noqa: E402
from masked_mixers.runs.rundir import load_run  # noqa: E402

PROMPTS = [
    "once upon a time",
    "the dog",
    "lily and tom went to the park to play",
    "a",
    "one day, a little girl named sue",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base url, model, tokenizer): the server runs in a child process for the module, then is stopped."""
    run_dir = make_run(tmp_path_factory.mktemp("serve") / "run", seq_len=32)
    with serve(run_dir, "--max-batch-size", "4", "--batch-wait-ms", "100") as (base, _process):
        model, tokenizer = load_run(run_dir)
        yield base, model, tokenizer


def _expected(server, prompt: str, max_tokens: int, **kwargs) -> str:
    _, model, tokenizer = server
    return generate_text(model, tokenizer, [prompt], max_tokens, greedy=True, **kwargs)[0]


def _complete(base: str, **body) -> dict:
    response = httpx.post(f"{base}/v1/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def _stream(base: str, **body) -> tuple[str, list[dict]]:
    """(concatenated text, chunks) of a streamed completion; fails unless it ends with [DONE]."""
    chunks, done = [], False
    with httpx.stream("POST", f"{base}/v1/completions", json={**body, "stream": True}, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            assert not done, "data after [DONE]"
            if line == "data: [DONE]":
                done = True
            else:
                chunks.append(json.loads(line[len("data: ") :]))
    assert done
    return "".join(c["choices"][0]["text"] for c in chunks), chunks


def test_greedy_completion_is_generate_text(server):
    base = server[0]
    answer = _complete(base, model="anything", prompt=PROMPTS[0], max_tokens=12, temperature=0)
    assert answer["object"] == "text_completion" and answer["model"] == "run"
    (choice,) = answer["choices"]
    assert choice["text"] == _expected(server, PROMPTS[0], 12)
    assert choice["finish_reason"] in ("length", "stop") and choice["index"] == 0
    usage = answer["usage"]
    assert usage["prompt_tokens"] == len(server[2](PROMPTS[0])["input_ids"])
    assert (
        1 <= usage["completion_tokens"] <= 12
        and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    )


def test_concurrent_requests_get_their_own_text_and_are_batched(server):
    base = server[0]
    before = httpx.get(f"{base}/health").json()
    requests = [(p, 10) for p in PROMPTS] + [(p, 6) for p in PROMPTS[:3]] + [(s[:40], 10) for s in stories(4, skip=300)]
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        answers = list(pool.map(lambda r: _complete(base, prompt=r[0], max_tokens=r[1], temperature=0), requests))
    for (prompt, max_tokens), answer in zip(requests, answers):
        assert answer["choices"][0]["text"] == _expected(server, prompt, max_tokens), prompt
    after = httpx.get(f"{base}/health").json()
    jobs, batches = after["requests"] - before["requests"], after["batches"] - before["batches"]
    assert jobs == len(requests) and batches < jobs  # some requests shared a batch


def test_a_list_of_prompts_is_one_request_with_a_choice_each(server):
    answer = _complete(server[0], prompt=PROMPTS[:3], max_tokens=8, temperature=0)
    assert [c["index"] for c in answer["choices"]] == [0, 1, 2]
    assert [c["text"] for c in answer["choices"]] == [_expected(server, p, 8) for p in PROMPTS[:3]]


def test_streaming_sends_the_same_text_in_pieces(server):
    base = server[0]
    text, chunks = _stream(base, prompt=PROMPTS[2], max_tokens=16, temperature=0)
    assert text == _expected(server, PROMPTS[2], 16)
    assert len([c for c in chunks if c["choices"][0]["text"]]) > 1  # several deltas, not one blob
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    assert len({c["id"] for c in chunks}) == 1


def test_stop_strings_end_the_text_before_them(server):
    base = server[0]
    full = _expected(server, PROMPTS[1], 20)
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    assert stop and stop in full, full
    expected = full[: full.index(stop)]
    answer = _complete(base, prompt=PROMPTS[1], max_tokens=20, temperature=0, stop=[stop, "\u2603never"])
    assert answer["choices"][0]["text"] == expected and answer["choices"][0]["finish_reason"] == "stop"
    text, chunks = _stream(base, prompt=PROMPTS[1], max_tokens=20, temperature=0, stop=stop)
    assert text == expected and chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_seeded_samples_repeat_and_differ_by_seed(server):
    base = server[0]
    body = dict(prompt=PROMPTS[0], max_tokens=12, temperature=1.0, top_p=0.9)
    first = _complete(base, seed=5, **body)["choices"][0]["text"]
    assert _complete(base, seed=5, **body)["choices"][0]["text"] == first
    assert any(_complete(base, seed=s, **body)["choices"][0]["text"] != first for s in (6, 7, 8))


def test_logprobs_are_the_models_log_softmax(server):
    """echo + logprobs scores the prompt (first token null) and the generated token, each with its top-k."""
    import torch

    base, model, tokenizer = server
    ids = tokenizer(PROMPTS[2])["input_ids"]
    answer = _complete(base, prompt=[ids], max_tokens=1, temperature=0, echo=True, logprobs=3, n=2)
    first, second = answer["choices"]
    assert (first["index"], second["index"]) == (0, 1) and first["text"] == second["text"]
    logprobs = first["logprobs"]
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].log_softmax(-1)  # (t, vocab)
    new = int(expected[-1].argmax())
    assert len(logprobs["token_logprobs"]) == len(ids) + 1 and logprobs["token_logprobs"][0] is None
    for i, token in enumerate([*ids[1:], new]):
        assert logprobs["token_logprobs"][i + 1] == pytest.approx(float(expected[i, token]), abs=1e-4)
        top = logprobs["top_logprobs"][i + 1]
        assert len(top) <= 3 and max(top.values()) == pytest.approx(float(expected[i].max()), abs=1e-4)
    assert first["text"] == PROMPTS[2] + tokenizer.decode([new]) and logprobs["text_offset"][0] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 5}, "prompt"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"prompt": "x", "temperature": -1}, "temperature"),
        ({"prompt": "x", "top_p": 0}, "top_p"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "logprobs": 6}, "logprobs"),  # at most 5, as OpenAI
        ({"prompt": "x", "logprobs": 1, "stream": True}, "logprobs"),
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),  # only with echo
        ({"prompt": "x", "best_of": 2}, "best_of"),
        ({"prompt": "x", "suffix": "y"}, "suffix"),
        ({"prompt": [[]]}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"prompt": "x", "temperature": 1, "seed": 2**70}, "seed"),  # numpy and torch take seeds below 2**32
        ({"prompt": "x", "temperature": 1, "seed": -1}, "seed"),
    ],
)
def test_bad_requests_get_400_naming_the_field(server, body, field):
    response = httpx.post(f"{server[0]}/v1/completions", json=body, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (
        error["type"] == "invalid_request_error" and error["message"].startswith(field) and "\n" not in error["message"]
    )


def test_server_keeps_serving_after_bad_input(server):
    base = server[0]
    garbage = httpx.post(
        f"{base}/v1/completions", content=b"{not json", headers={"content-type": "application/json"}, timeout=30
    )
    assert garbage.status_code == 400 and "JSON" in garbage.json()["error"]["message"]
    assert httpx.post(f"{base}/v1/completions", json={"prompt": "x", "max_tokens": -3}, timeout=30).status_code == 400
    assert httpx.get(f"{base}/v1/nothing-here", timeout=30).status_code == 404
    assert _complete(base, prompt=PROMPTS[3], max_tokens=5, temperature=0)["choices"][0]["text"] == _expected(
        server, PROMPTS[3], 5
    )
    models = httpx.get(f"{base}/v1/models", timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["run"]


def test_engine_batches_left_padded_llama_prompts_without_cross_talk():
    """The engine in-process on a Llama (left padding, position ids): one batch, each row as if alone."""
    import threading

    import torch
    from tinyrun import tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    from masked_mixers.serving.engine import Engine, Job, Sampling

    tok = tokenizer("left")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config).eval()
    texts, finished, all_done = {i: "" for i in range(len(PROMPTS))}, [], threading.Event()

    def emitter(i: int):
        def emit(event) -> None:
            if event.kind == "text":
                texts[i] += event.text
            else:
                finished.append((i, event.kind))
                if len(finished) == len(PROMPTS):
                    all_done.set()

        return emit

    engine = Engine(model, tok, max_batch_size=len(PROMPTS), batch_wait_s=0.5).start()
    try:
        engine.submit([Job(p, Sampling(max_tokens=10, temperature=0), emitter(i)) for i, p in enumerate(PROMPTS)])
        assert all_done.wait(timeout=120)
    finally:
        engine.stop()
    assert engine.batches_run == 1 and engine.jobs_run == len(PROMPTS)
    assert sorted(finished) == [(i, "done") for i in range(len(PROMPTS))]
    for i, prompt in enumerate(PROMPTS):
        assert texts[i] == generate_text(model, tok, [prompt], 10, greedy=True)[0], prompt
