"""The HTTP side of `masked-mixers serve`: an OpenAI-compatible `/v1/completions` on FastAPI.

Routes: POST /v1/completions (streaming with `"stream": true`, as server-sent events ending in
`data: [DONE]`, as OpenAI streams), GET /v1/models, GET /health. The request body follows
OpenAI's completions API; `top_k` and `repetition_penalty` are extensions (as in vLLM). A body
that is not valid (unknown field, wrong type, out-of-range value, unsupported option, a prompt too
long for the model) is answered 400 with OpenAI's error shape `{"error": {"message", "type",
"param", "code"}}`, one line naming the field; the server keeps serving.

Why hand-written: transformers' own `transformers serve` loads models by hub id and lays prompts
out its own way; a masked mixer needs `masked_mixers.generation`'s layout (its positions are rows
of its mixing matrices), so this thin layer puts that engine behind the same wire format.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..core.errors import UserError
from .engine import Engine, Event, Job, Sampling

MAX_STOP_STRINGS = 4  # as OpenAI


class CompletionRequest(BaseModel):
    """The body of POST /v1/completions (OpenAI's fields this server implements, and two extensions)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = Field(None, ge=0, lt=2**32)  # numpy and torch take unsigned 32-bit seeds
    n: int = Field(1, ge=1, le=1)
    echo: bool = False
    user: str | None = None
    # accepted so that clients sending OpenAI's defaults work; anything else is refused
    logprobs: None = None
    presence_penalty: float = Field(0.0, ge=0, le=0)
    frequency_penalty: float = Field(0.0, ge=0, le=0)

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and not prompt:
            raise ValueError("give at least one prompt")
        return prompt

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
            raise ValueError(f"at most {MAX_STOP_STRINGS} non-empty stop strings")
        return stop

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def sampling(self) -> Sampling:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return Sampling(self.max_tokens, self.temperature, self.top_p, self.top_k, self.repetition_penalty, stop)


def error_response(
    status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"
) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status_code=status)


def _validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    """One line for the first problem of a request body, naming its field."""
    first = err.errors()[0]
    kind = first.get("type")
    if kind == "json_invalid":
        return f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", None
    location = [p for p in first.get("loc", ()) if p != "body"]
    param = str(location[0]) if location else None  # the top-level field (not pydantic's union member tags)
    if kind == "extra_forbidden":
        return f"{param}: not a supported field of /v1/completions", param
    if kind == "none_required":
        return f"{param}: not supported by this server (leave it out or null)", param
    return f"{param or 'body'}: {first.get('msg')}", param


def build_app(engine: Engine, model_name: str) -> FastAPI:
    """The FastAPI app serving `engine`'s model as `model_name`."""
    app = FastAPI(title="masked-mixers", description=f"OpenAI-compatible completions for {model_name}")

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, err: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(err)
        return error_response(400, message, param)

    @app.get("/health")
    async def health() -> dict:
        """Up, and how many requests the engine has decoded in how many batches."""
        return {"status": "ok", "model": model_name, "requests": engine.jobs_run, "batches": engine.batches_run}

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "masked-mixers"}],
        }

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        jobs = []
        for index, prompt in enumerate(body.prompts()):

            def emit(event: Event, index: int = index) -> None:  # called from the engine's thread
                loop.call_soon_threadsafe(events.put_nowait, (index, event))

            jobs.append(Job(prompt, body.sampling(), emit, seed=body.seed))
        try:
            engine.submit(jobs)
        except UserError as err:
            return error_response(400, str(err), "prompt")
        meta = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model_name,
        }
        if body.stream:
            return StreamingResponse(_stream(meta, body, events, len(jobs)), media_type="text/event-stream")
        return await _collect(meta, body, events, len(jobs))

    return app


async def _events(events: asyncio.Queue, count: int) -> AsyncIterator[tuple[int, Event]]:
    """Every event of `count` jobs, until each has finished or failed."""
    open_jobs = count
    while open_jobs:
        index, event = await events.get()
        if event.kind != "text":
            open_jobs -= 1
        yield index, event


async def _collect(meta: dict, body: CompletionRequest, events: asyncio.Queue, count: int) -> Any:
    prompts = body.prompts()
    texts = [prompt if body.echo else "" for prompt in prompts]
    reasons: list[str | None] = [None] * count
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    async for index, event in _events(events, count):
        if event.kind == "error":
            return error_response(500, event.text, kind="server_error")
        if event.kind == "text":
            texts[index] += event.text
        else:
            reasons[index] = event.finish_reason
            usage["prompt_tokens"] += event.prompt_tokens
            usage["completion_tokens"] += event.completion_tokens
    choices = [
        {"text": t, "index": i, "logprobs": None, "finish_reason": r} for i, (t, r) in enumerate(zip(texts, reasons))
    ]
    return {
        **meta,
        "choices": choices,
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
    }


def _chunk(meta: dict, index: int, text: str, finish_reason: str | None) -> str:
    choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
    return f"data: {json.dumps({**meta, 'choices': [choice]})}\n\n"


async def _stream(meta: dict, body: CompletionRequest, events: asyncio.Queue, count: int) -> AsyncIterator[str]:
    """OpenAI's stream: one chunk per text delta, one with each choice's finish_reason, then [DONE]."""
    if body.echo:
        for index, prompt in enumerate(body.prompts()):
            yield _chunk(meta, index, prompt, None)
    async for index, event in _events(events, count):
        if event.kind == "error":
            error = {"message": event.text, "type": "server_error", "param": None, "code": None}
            yield f"data: {json.dumps({'error': error})}\n\n"
        elif event.kind == "text":
            yield _chunk(meta, index, event.text, None)
        else:
            yield _chunk(meta, index, "", event.finish_reason)
    yield "data: [DONE]\n\n"


__all__ = ["CompletionRequest", "build_app"]
