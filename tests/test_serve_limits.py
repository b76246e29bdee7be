"""`masked-mixers serve` under load it must refuse or cut short: real server processes on 127.0.0.1.

One server with small caps checks each cap is a 400 naming its flag (413 for the body), that a
request beyond them does not hold up others, and that
a client that goes away stops its decoding (the tiny model makes a few hundred tokens/s on a busy CPU,
so a 200,000-token request left running would keep `running` at 1 for many minutes; the tests wait
30 s), and that a full queue is a 503 (`--max-queue 1`, one row at a time). Time bounds are liveness bounds for a loaded
machine, not speed checks. A second server,
with a 6 s deadline and a 1 s shutdown grace, checks the 504 and the first SIGTERM.
"""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from serverproc import serve, wait_for  # noqa: E402
from tinyrun import make_run, stories, tokenizer  # noqa: E402

from masked_mixers.runs.rundir import load_run  # noqa: E402
from masked_mixers.serving.stream import Detokenizer  # noqa: E402

LONG = 200_000  # tokens: many minutes of decoding for the tiny model, so a 30 s bound shows it was stopped


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The tiny mixer with its EOS logit held at 0 (a zero output row): greedy text then never ends by itself
    (some other of the 299 random logits is positive), so a long request is long."""
    path = make_run(tmp_path_factory.mktemp("limits") / "run", seq_len=32)
    model, tok = load_run(path)
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.eos_token_id] = 0
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def base(run_dir):
    caps = ["--max-tokens-limit", "1000000", "--max-prompt-tokens", "64", "--max-body-bytes", "20000"]
    caps += ["--max-stop-chars", "16", "--max-choices", "8", "--max-queue", "1"]
    caps += ["--max-batch-size", "1"]  # one row decodes at a time, so a second request waits in the queue
    with serve(run_dir, *caps) as (url, _process):
        yield url


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=30).json()


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and "\n" not in error["message"]
    return error


def test_incremental_decoding_is_the_whole_text():
    """Token by token (multibyte characters split over byte-level tokens included) = one decode of all tokens."""
    tok = tokenizer()
    text = stories(1, skip=5)[0][:200] + " caf\u00e9 \u2603 \U0001f600 na\u00efve \u4e2d\u6587"
    ids = tok(text)["input_ids"]
    detokenizer = Detokenizer(tok)
    pieces = [detokenizer.add(t) for t in ids] + [detokenizer.finish()]
    assert "".join(pieces) == tok.decode(ids) == text
    assert sum(1 for p in pieces if p) > len(ids) // 2  # it streams, it does not wait for the end


def test_oversized_max_tokens_is_refused_and_a_concurrent_request_answers(base):
    def post(max_tokens: int) -> tuple[httpx.Response, float]:
        start = time.monotonic()
        body = {"prompt": "the dog", "max_tokens": max_tokens, "temperature": 0}
        return httpx.post(f"{base}/v1/completions", json=body, timeout=60), time.monotonic() - start

    with ThreadPoolExecutor(2) as pool:
        huge, small = pool.map(post, [10**7, 8])
    error = _error(huge[0], 400)
    assert error["param"] == "max_tokens" and "1000000" in error["message"] and "--max-tokens-limit" in error["message"]
    assert small[0].status_code == 200 and small[1] < 60


@pytest.mark.parametrize(
    ("body", "param", "flag"),
    [
        ({"prompt": " ".join(stories(3)), "max_tokens": 2}, "prompt", "64"),
        ({"prompt": [[5] * 65], "max_tokens": 2}, "prompt", "64"),
        ({"prompt": "a", "stop": "x" * 17}, "stop", "--max-stop-chars"),
        ({"prompt": ["a", "b", "c"], "n": 3}, "n", "--max-choices"),
        ({"prompt": [[5, 10**6]]}, "prompt", "token ids"),
    ],
)
def test_a_request_beyond_a_limit_is_a_400_naming_it(base, body, param, flag):
    error = _error(httpx.post(f"{base}/v1/completions", json=body, timeout=30), 400)
    assert error["param"] == param and error["message"].startswith(param) and flag in error["message"], error


def test_a_large_body_is_a_413_sized_or_chunked(base):
    sized = httpx.post(f"{base}/v1/completions", json={"prompt": "x" * 30_000}, timeout=30)
    assert "--max-body-bytes" in _error(sized, 413)["message"]
    chunks = (b'{"prompt": "' + b"y" * 30_000 + b'"}',)  # an iterator: sent chunked, with no Content-Length
    chunked = httpx.post(
        f"{base}/v1/completions", content=iter(chunks), headers={"content-type": "application/json"}, timeout=30
    )
    assert "--max-body-bytes" in _error(chunked, 413)["message"]
    assert _health(base)["status"] == "ok"


def test_unknown_routes_answer_in_openai_shape(base):
    chat = httpx.post(f"{base}/v1/chat/completions", json={"messages": []}, timeout=30)
    error = _error(chat, 404)
    assert error["code"] == "unknown_url" and "/v1/chat/completions" in error["message"]
    assert "POST /v1/completions" in _error(httpx.get(f"{base}/v1/completions", timeout=30), 405)["message"]


def test_a_disconnected_stream_stops_decoding_and_health_answers_meanwhile(base):
    before = _health(base)["requests"]
    body = {"prompt": "once upon a time", "max_tokens": LONG, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{base}/v1/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        start = time.monotonic()
        assert _health(base)["running"] == 1 and time.monotonic() - start < 30  # /health does not queue behind it
    wait_for(lambda: _health(base)["running"] == 0, 30, "decoding stopped after the client went away")
    assert _health(base)["requests"] == before + 1


def test_a_disconnected_plain_request_stops_decoding(base):
    body = {"prompt": "the dog", "max_tokens": LONG, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base}/v1/completions", json=body, timeout=httpx.Timeout(30, read=1.5))
    wait_for(lambda: _health(base)["running"] == 0, 30, "decoding stopped after the client went away")


def test_a_full_queue_is_a_503_with_retry_after_and_the_waiting_request_runs_later(base):
    """--max-queue 1: while one request decodes and one waits, a third is refused; the waiting one runs after."""
    long = {"prompt": "once upon a time", "max_tokens": LONG, "temperature": 0, "stream": True}
    short = {"prompt": "the dog", "max_tokens": 4, "temperature": 0}
    with ThreadPoolExecutor(1) as pool:
        with httpx.stream("POST", f"{base}/v1/completions", json=long, timeout=30) as response:
            lines = response.iter_lines()  # kept: an iterator closed early closes the connection
            assert next(line for line in lines if line.startswith("data: "))
            waiting = pool.submit(httpx.post, f"{base}/v1/completions", json=short, timeout=120)
            wait_for(lambda: _health(base)["queued"] == 1, 60, "the second request waits in the queue")
            refused = httpx.post(f"{base}/v1/completions", json=short, timeout=30)
            assert "--max-queue" in _error(refused, 503)["message"] and refused.headers["retry-after"] == "1"
            assert _health(base)["queued"] == 1  # the refused request left nothing behind
        assert waiting.result().status_code == 200  # the stream's client left: its row stopped, the next one ran
    wait_for(lambda: _health(base)["queued"] == 0, 30, "the queue emptied")


@pytest.fixture(scope="module")
def strict(run_dir):
    """(url, process): a 6 s deadline, 1 s of shutdown grace."""
    flags = ["--request-timeout", "6", "--shutdown-grace", "1"]
    with serve(run_dir, "--max-tokens-limit", "1000000", *flags) as server:
        yield server


def test_a_full_queue_refuses_a_request_whole(run_dir):
    """The engine (worker not started, so nothing leaves the queue): a request that does not fit is refused whole."""
    from masked_mixers.serving.engine import Busy, Engine, Job, Sampling

    engine = Engine(*load_run(run_dir), max_queue=2)
    engine.submit([Job("a", Sampling(max_tokens=2), print)])
    with pytest.raises(Busy, match="--max-queue"):
        engine.submit([Job("b", Sampling(max_tokens=2), print), Job("c", Sampling(max_tokens=2), print)])
    assert engine.queued == 1
    engine.submit([Job("d", Sampling(max_tokens=2), print)])
    assert engine.queued == 2


def test_a_request_past_its_deadline_is_a_504(strict):
    url = strict[0]
    start = time.monotonic()
    body = {"prompt": "the dog", "max_tokens": LONG, "temperature": 0}
    answer = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert _error(answer, 504)["code"] == "timeout" and "--request-timeout" in answer.text
    assert 6 <= time.monotonic() - start < 6 + 60
    wait_for(lambda: _health(url)["running"] == 0, 30, "decoding stopped at the deadline")


def test_the_first_sigterm_exits_within_the_grace_period(strict):
    url, process = strict
    body = {"prompt": "once upon a time", "max_tokens": LONG, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))
        process.send_signal(signal.SIGTERM)
        with pytest.raises(httpx.HTTPError):  # cut when the grace period ends (not ended by the 6 s deadline)
            for line in lines:
                assert "--request-timeout" not in line and line != "data: [DONE]"
    wait_for(lambda: process.poll() is not None, 1 + 30, "the server exited after one SIGTERM (1 s grace)")
