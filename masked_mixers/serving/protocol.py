"""The wire format of `masked-mixers serve`: OpenAI's completions request, and OpenAI's error shape.

The request body follows OpenAI's (legacy) completions API; `top_k` and `repetition_penalty` are
extensions (as in vLLM). A prompt is a string, a list of strings, a list of token ids or a list of
lists of token ids (what lm-eval's `local-completions` sends). Any field this server does not
implement (`best_of`, `suffix`, `logit_bias`, ...) is refused, as is a value out of range; every
error is answered in OpenAI's shape `{"error": {"message", "type", "param", "code"}}` with a
one-line message naming the field.
"""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .engine import Sampling
from .scoring import MAX_LOGPROBS

MAX_STOP_STRINGS = 4  # as OpenAI

Prompt = str | list[int]


class CompletionRequest(BaseModel):
    """The body of POST /v1/completions (OpenAI's fields this server implements, and two extensions)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int = Field(16, ge=0)  # 0 only with echo: score the prompt, generate nothing
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = Field(None, ge=0, lt=2**32)  # numpy and torch take unsigned 32-bit seeds
    n: int = Field(1, ge=1)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    user: str | None = None
    # accepted so that clients sending OpenAI's defaults work; anything else is refused
    presence_penalty: float = Field(0.0, ge=0, le=0)
    frequency_penalty: float = Field(0.0, ge=0, le=0)

    @field_validator("prompt")
    @classmethod
    def _some_prompt(cls, prompt):
        if isinstance(prompt, list) and (not prompt or any(isinstance(p, list) and not p for p in prompt)):
            raise ValueError("give at least one prompt, and at least one token in each list of token ids")
        return prompt

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        stops = [stop] if isinstance(stop, str) else stop or []
        if len(stops) > MAX_STOP_STRINGS or any(not s for s in stops):
            raise ValueError(f"at most {MAX_STOP_STRINGS} non-empty stop strings")
        return stop

    @model_validator(mode="after")
    def _coherent(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens: 0 only with echo (to score the prompt)")
        if self.stream and self.logprobs is not None:
            raise ValueError("logprobs: not supported with stream (ask without streaming)")
        return self

    def prompts(self) -> list[Prompt]:
        """One entry per prompt: a text or a list of token ids."""
        if isinstance(self.prompt, str) or (self.prompt and isinstance(self.prompt[0], int)):
            return [self.prompt]
        return list(self.prompt)

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def sampling(self) -> Sampling:
        penalty = self.repetition_penalty
        return Sampling(self.max_tokens, self.temperature, self.top_p, self.top_k, penalty, self.stops())


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None, code=None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    param: str | None = None,
    kind: str | None = None,
    code: str | None = None,
    headers: dict | None = None,
) -> JSONResponse:
    """OpenAI's error shape; the type is invalid_request_error for a 4xx, server_error for a 5xx unless given."""
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse(error_body(message, kind, param, code), status_code=status, headers=headers)


def validation_message(err: RequestValidationError) -> tuple[str, str | None]:
    """One line for the first problem of a request body, naming its field."""
    first = err.errors()[0]
    kind = first.get("type")
    if kind == "json_invalid":
        return f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", None
    location = [p for p in first.get("loc", ()) if p != "body"]
    param = str(location[0]) if location else None  # the top-level field (not pydantic's union member tags)
    if kind == "extra_forbidden":
        return f"{param}: not a supported field of /v1/completions", param
    message = str(first.get("msg"))
    if param is None and kind == "value_error":  # a model-level check: its message starts with the field
        message = message.removeprefix("Value error, ")
        return message, message.split(":")[0]
    return f"{param or 'body'}: {message}", param


__all__ = ["CompletionRequest", "Prompt", "error_body", "error_response", "validation_message"]
