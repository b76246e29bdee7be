"""The HTTP side of `masked-mixers serve`: an OpenAI-compatible `/v1/completions` on FastAPI.

Routes: POST /v1/completions (streaming with `"stream": true`, as server-sent events ending in
`data: [DONE]`, as OpenAI streams), GET /v1/models, GET /health. The body is protocol.py's
`CompletionRequest`; limits.py's caps bound it. Every error, an unknown route included, is
answered in OpenAI's shape `{"error": {"message", "type", "param", "code"}}` and the server keeps
serving.

Cancellation: a request whose client disconnects cancels its jobs (a stream when Starlette
cancels its generator, a plain request when the handler, which polls `request.is_disconnected()`
while it waits, sees it); the engine stops their rows within one decoding step. At shutdown
(first SIGTERM) uvicorn stops accepting, gives in-flight requests `--shutdown-grace` seconds, then
cancels their handlers (which cancel their jobs); the app's lifespan then stops the engine.

Why hand-written: transformers' own `transformers serve` loads models by hub id and lays prompts
out its own way; a masked mixer needs `masked_mixers.generation`'s layout (its positions are rows
of its mixing matrices), so this thin layer puts that engine behind the same wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from ..core.errors import UserError
from .engine import Busy, Engine, Event, Job
from .limits import LimitError, Limits, check_request
from .protocol import CompletionRequest, error_body, error_response, validation_message

ROUTES = "POST /v1/completions, GET /v1/models and GET /health"
DISCONNECT_POLL_S = 0.1  # how often a waiting plain request checks that its client is still there
_requests = itertools.count()


def _http_error(request: Request, err: HTTPException, limits: Limits) -> JSONResponse:
    """Starlette's 404, 405 and 413 in OpenAI's shape."""
    where = f"{request.method} {request.url.path}"
    if err.status_code == 404:
        return error_response(404, f"unknown request URL: {where}; this server answers {ROUTES}", code="unknown_url")
    if err.status_code == 405:
        return error_response(405, f"{where}: method not allowed; this server answers {ROUTES}")
    if err.status_code == 413:
        return _too_large(limits.max_body_bytes)
    return error_response(err.status_code, str(err.detail))


class BodyLimit:
    """413 for a request body over `limits.max_body_bytes`, before it is read into memory.

    A declared Content-Length over the limit is answered at once; a chunked body is counted as it
    arrives and the read that passes the limit raises Starlette's HTTPException(413), which the
    app's handler answers. (FastAPI's own `max_body_size` answers a declared length in plain text,
    not in OpenAI's error shape.)
    """

    def __init__(self, app, limits: Limits):
        self.app, self.limit = app, limits.max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit)(scope, receive, send)
            return
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


def _too_large(limit: int) -> JSONResponse:
    message = f"the request body is larger than this server's limit of {limit} bytes (--max-body-bytes)"
    return error_response(413, message)


def build_app(engine: Engine, model_name: str, limits: Limits | None = None) -> FastAPI:
    """The FastAPI app serving `engine`'s model as `model_name`, within `limits`; it stops the engine at shutdown."""
    limits = limits or Limits()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await asyncio.to_thread(engine.stop)

    app = FastAPI(
        title="masked-mixers",
        description=f"OpenAI-compatible completions for {model_name}",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limits=limits)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        message, param = validation_message(err)
        return error_response(400, message, param)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, err: HTTPException) -> JSONResponse:
        return _http_error(request, err, limits)

    @app.get("/health")
    async def health() -> dict:
        """Up; how many requests the engine has decoded in how many batches, how many run and wait now."""
        return {
            "status": "ok",
            "model": model_name,
            "batching": engine.batching,
            "compiled": engine.compiled is not None,
            "requests": engine.jobs_run,
            "batches": engine.batches_run,
            "running": engine.running,
            "queued": engine.queued,
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "masked-mixers"}],
        }

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        prompts = body.prompts()
        try:
            check_request(limits, body.max_tokens, body.stops(), len(prompts) * body.n)
        except LimitError as err:
            return error_response(400, str(err), err.param)
        events: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        jobs = _jobs(body, prompts, events, limits)
        try:
            await asyncio.to_thread(engine.submit, jobs)
        except UserError as err:
            return error_response(400, str(err), str(err).split(":")[0])
        except Busy as err:
            return error_response(503, f"the server is busy: {err}", code="overloaded", headers={"Retry-After": "1"})
        meta = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model_name,
        }
        if body.stream:
            return StreamingResponse(_stream(meta, events, jobs, engine), media_type="text/event-stream")
        return await _collect(meta, events, jobs, engine, request)

    return app


def _jobs(body: CompletionRequest, prompts: list, events: asyncio.Queue, limits: Limits) -> list[Job]:
    """One Job per choice, choice i * n + j being prompt i's j-th (OpenAI's order)."""
    loop, group, sampling = asyncio.get_running_loop(), next(_requests), body.sampling()

    def emitter(index: int):
        held: list[str] = []  # a plain request's text, sent with its end: one wake of the event loop, not one a token

        def post(event: Event) -> None:
            with contextlib.suppress(RuntimeError):  # the event loop is closed: the server has stopped
                loop.call_soon_threadsafe(events.put_nowait, (index, event))

        def emit(event: Event) -> None:  # called from the engine's thread
            if event.kind == "text" and not body.stream:
                held.append(event.text)
                return
            if held:
                post(Event("text", text="".join(held)))
                held.clear()
            post(event)

        return emit

    return [
        Job(
            prompt,
            sampling,
            emitter(i * body.n + j),
            seed=body.seed,
            group=group,
            choice=i * body.n + j,
            echo=body.echo,
            logprobs=body.logprobs,
            timeout_s=limits.request_timeout_s,
        )
        for i, prompt in enumerate(prompts)
        for j in range(body.n)
    ]


class _ClientGone(Exception):
    pass


async def _events(events: asyncio.Queue, count: int, request: Request | None) -> AsyncIterator[tuple[int, Event]]:
    """Every event of `count` jobs, until each has finished or failed; _ClientGone when `request`'s client leaves."""
    open_jobs, checked = count, time.monotonic()
    while open_jobs:
        # poll the client every DISCONNECT_POLL_S whether or not events arrive: a fast decoder sends text
        # every step, so a check made only when the queue goes quiet would never run
        if request is not None and time.monotonic() - checked >= DISCONNECT_POLL_S:
            checked = time.monotonic()
            if await request.is_disconnected():
                raise _ClientGone
        try:
            index, event = await asyncio.wait_for(events.get(), DISCONNECT_POLL_S)
        except TimeoutError:
            continue
        if event.kind != "text":
            open_jobs -= 1
        yield index, event


async def _collect(meta: dict, events: asyncio.Queue, jobs: list[Job], engine: Engine, request: Request):
    texts, ends = [""] * len(jobs), [None] * len(jobs)
    try:
        async for index, event in _events(events, len(jobs), request):
            if event.kind == "error":
                return error_response(event.status, event.text, code="timeout" if event.status == 504 else None)
            if event.kind == "text":
                texts[index] += event.text
            else:
                ends[index] = event
    except _ClientGone:
        return error_response(499, "the client closed the request")
    finally:
        engine.cancel(jobs)  # a no-op for finished jobs; the rest stop at their next step
    choices = [
        {"text": t, "index": i, "logprobs": e.logprobs, "finish_reason": e.finish_reason}
        for i, (t, e) in enumerate(zip(texts, ends))
    ]
    prompt_tokens = sum(e.prompt_tokens for e in ends)
    completion_tokens = sum(e.completion_tokens for e in ends)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return {**meta, "choices": choices, "usage": {**usage, "total_tokens": prompt_tokens + completion_tokens}}


def _chunk(meta: dict, index: int, text: str, finish_reason: str | None) -> str:
    choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
    return f"data: {json.dumps({**meta, 'choices': [choice]})}\n\n"


async def _stream(meta: dict, events: asyncio.Queue, jobs: list[Job], engine: Engine) -> AsyncIterator[str]:
    """OpenAI's stream: one chunk per text delta, one with each choice's finish_reason, then [DONE].

    Starlette cancels this generator when the client disconnects (and uvicorn when the shutdown grace
    period ends): `finally` then cancels the jobs still decoding.
    """
    try:
        async for index, event in _events(events, len(jobs), None):
            if event.kind == "error":
                yield f"data: {json.dumps(error_body(event.text, 'server_error'))}\n\n"
            elif event.kind == "text":
                yield _chunk(meta, index, event.text, None)
            else:
                yield _chunk(meta, index, "", event.finish_reason)
        yield "data: [DONE]\n\n"
    finally:
        engine.cancel(jobs)


__all__ = ["build_app"]
