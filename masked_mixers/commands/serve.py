"""Serve a trained model over HTTP with an OpenAI-compatible completions API (FastAPI + uvicorn).

  POST /v1/completions   {"prompt": "once upon a time", "max_tokens": 50, "temperature": 0.8}
                         ("stream": true answers with server-sent events, as OpenAI does)
  GET  /v1/models, GET /health

A mixer serves with continuous batching: a request joins the running batch at the next decoding
step (up to --max-batch-size rows) and leaves it when done. Other families (Llama, GPT-2, the
transfixer) run static batches: requests that arrive together and decode the same way run as one
batch to its end. Either way each request gets the text it would get alone (docs/serving.md).
--compile (mixers) runs each decoding step through one torch.compile'd fixed-shape graph per
batch-size bucket, compiled before the server answers: the same text, less time per step.
temperature 0 is greedy decoding; `seed` makes a sample reproducible whatever else runs;
`logprobs` (top-k per token), `echo` with logprobs (prompt scoring, as lm-eval's local-completions
asks) and `n` choices per prompt. A bad request gets a 400 with one line naming the field; one
beyond a server limit (the --max-* flags) a 400 naming the limit; a full queue a 503 with
Retry-After. A request stops decoding within one step when its client disconnects or its
--request-timeout passes (a 504); the first SIGTERM gives in-flight requests --shutdown-grace
seconds, then cancels them and exits. Needs the `serve` extra: pip install "masked-mixers[serve]".

Example:
  masked-mixers serve runs/mixer --port 8000
  masked-mixers serve runs/mixer --port 8000 --compile
  curl -s localhost:8000/v1/completions -H 'content-type: application/json' -d '{"prompt": "the dog", "max_tokens": 20}'
  (or any OpenAI client with base_url="http://localhost:8000/v1")
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import UserError
from ..core.options import add_device
from ..serving.limits import Limits

# flag -> Limits field
_LIMIT_FLAGS = {
    "max_tokens_limit": "max_tokens",
    "max_prompt_tokens": "max_prompt_tokens",
    "max_body_bytes": "max_body_bytes",
    "max_stop_chars": "max_stop_chars",
    "max_choices": "max_choices",
    "max_queue": "max_queue",
    "request_timeout": "request_timeout_s",
    "shutdown_grace": "shutdown_grace_s",
}


def limits_of(args: argparse.Namespace) -> Limits:
    """The server's caps from its flags; a UserError naming a flag that is not > 0."""
    for flag in _LIMIT_FLAGS:
        if not getattr(args, flag) > 0:
            raise UserError(f"--{flag.replace('_', '-')}: must be > 0, got {getattr(args, flag)}")
    return Limits(**{field: getattr(args, flag) for flag, field in _LIMIT_FLAGS.items()})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model_dir", metavar="RUN_DIR", help="directory with the model and its tokenizer (a training run's output_dir)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    parser.add_argument(
        "--model-name", help="the model id clients see in responses and /v1/models (default: RUN_DIR's folder name)"
    )
    parser.add_argument("--max-batch-size", type=int, default=8, help="most requests decoded together in one batch")
    parser.add_argument(
        "--batching",
        choices=("auto", "continuous", "static"),
        default="auto",
        help="continuous: a request joins the running batch at the next step (mixers only); static: a batch runs "
        "to its end while new requests wait; auto (default): continuous where the family allows it",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="masked and linear mixers, continuous batching: decode through a torch.compile'd fixed-shape step, "
        "one graph per batch-size bucket (1, 2, 4, ... --max-batch-size), compiled before the server answers "
        "(seconds to minutes on a CPU); the same text, faster steps (docs/serving.md)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="static batching: how long the first waiting request waits for others to batch with",
    )
    limits = Limits()
    parser.add_argument(
        "--max-tokens-limit", type=int, default=limits.max_tokens, help="largest max_tokens a request may ask for"
    )
    parser.add_argument(
        "--max-prompt-tokens", type=int, default=limits.max_prompt_tokens, help="most tokens in one prompt"
    )
    parser.add_argument(
        "--max-body-bytes", type=int, default=limits.max_body_bytes, help="largest request body (413 beyond it)"
    )
    parser.add_argument(
        "--max-stop-chars", type=int, default=limits.max_stop_chars, help="longest stop string, in characters"
    )
    parser.add_argument(
        "--max-choices", type=int, default=limits.max_choices, help="most choices (prompts x n) in one request"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=limits.max_queue,
        help="most choices waiting for the model; beyond it a request gets 503 with Retry-After",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=limits.request_timeout_s,
        help="seconds a request may take, waiting included; then its decoding stops and it gets a 504",
    )
    parser.add_argument(
        "--shutdown-grace",
        type=float,
        default=limits.shutdown_grace_s,
        help="seconds in-flight requests get to finish after the first SIGTERM/SIGINT before they are cancelled",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for decoding (default: torch's choice, every core; with --compile on a CPU, every "
        "core but one, left to the HTTP event loop: measured faster, docs/serving.md)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level",
    )
    add_device(parser)


def _set_threads(args: argparse.Namespace, device: str) -> None:
    """--threads; --compile on a CPU defaults to every core but one, left to the HTTP event loop: its compiled
    kernels run all their threads at each step, and one of them descheduled stalls the step (docs/serving.md)."""
    import torch

    threads = args.threads
    if threads is None and args.compile and device == "cpu":
        threads = max(1, torch.get_num_threads() - 1)
        print(f"[serve] --compile on a CPU: {threads} torch thread(s), a core left to the event loop (--threads)")
    if threads is not None:
        torch.set_num_threads(threads)  # before compiling: Inductor's CPU kernels take the count then


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:  # checked before the model loads (uvicorn would raise deep inside asyncio)
        raise UserError(f"--port must be a TCP port from 0 to 65535, got {args.port}")
    limits = limits_of(args)
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads: must be >= 1, got {args.threads}")
    try:
        import uvicorn

        from ..serving.api import build_app
    except ImportError as err:
        raise UserError(
            f'serve needs FastAPI and uvicorn ({err.name} is missing): pip install "masked-mixers[serve]"'
        ) from None
    from ..core.devices import resolve_device
    from ..generation import require_causal_lm
    from ..runs.rundir import load_run
    from ..serving.engine import Engine

    model, tokenizer = load_run(args.model_dir)
    require_causal_lm(model, args.model_dir)
    model.to(resolve_device(args.device))
    engine = Engine(
        model,
        tokenizer,
        max_batch_size=args.max_batch_size,
        batch_wait_s=args.batch_wait_ms / 1000,
        max_queue=limits.max_queue,
        max_prompt_tokens=limits.max_prompt_tokens,
        batching=args.batching,
        compile=args.compile,
    )
    _set_threads(args, model.device.type)  # once the engine accepted the flags, before it compiles
    engine.start()
    name = args.model_name or Path(args.model_dir).resolve().name
    try:
        uvicorn.run(
            build_app(engine, name, limits),
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=limits.shutdown_grace_s,
        )
    finally:
        engine.stop()
    return 0
