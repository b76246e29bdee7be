"""What one request may ask of `masked-mixers serve`: the server-side caps, each a `serve` flag.

The caps bound the work and memory of a request before it reaches the model: the body size
(api.BodyLimit: 413 beyond it, before the JSON is parsed), `max_tokens`, the prompt's
tokens (checked by the engine, which tokenizes off the event loop), the length of each stop
string, the choices per request (prompts x n), how many choices may wait (`--max-queue`: 503 with
Retry-After beyond it), how long a request may take (`--request-timeout`: its decoding stops and it
gets a 504), and how long in-flight requests get to finish after the first SIGTERM before they are
cancelled (`--shutdown-grace`). A request over a cap gets a 400 naming the field and the flag.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The caps, as `masked-mixers serve` flags set them (defaults in the flags' help)."""

    max_tokens: int = 2048
    max_prompt_tokens: int = 8192
    max_body_bytes: int = 1 << 20
    max_stop_chars: int = 256
    max_choices: int = 64
    max_queue: int = 256
    request_timeout_s: float = 300.0
    shutdown_grace_s: float = 10.0


class LimitError(Exception):
    """A request beyond one of the caps: the field at fault (`param`) and a one-line message naming the flag."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


def check_request(limits: Limits, max_tokens: int, stops: tuple[str, ...], choices: int) -> None:
    """LimitError unless a request's `max_tokens`, stop strings and number of choices fit `limits`."""
    if max_tokens > limits.max_tokens:
        raise LimitError(
            "max_tokens", f"{max_tokens} is above this server's limit of {limits.max_tokens} (--max-tokens-limit)"
        )
    longest = max(map(len, stops), default=0)
    if longest > limits.max_stop_chars:
        raise LimitError(
            "stop",
            f"a stop string of {longest} characters; this server takes at most {limits.max_stop_chars} "
            "(--max-stop-chars)",
        )
    if choices > limits.max_choices:
        raise LimitError(
            "n",
            f"{choices} choices (prompts x n) in one request; this server takes at most {limits.max_choices} "
            "(--max-choices)",
        )


__all__ = ["LimitError", "Limits", "check_request"]
