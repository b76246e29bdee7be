"""Serve a trained model over HTTP with an OpenAI-compatible completions API (FastAPI + uvicorn).

  POST /v1/completions   {"prompt": "once upon a time", "max_tokens": 50, "temperature": 0.8}
                         ("stream": true answers with server-sent events, as OpenAI does)
  GET  /v1/models, GET /health

Requests that arrive together and decode the same way run as one batch (up to --max-batch-size);
each gets the text it would get alone (the masked mixer's prompt layout keeps rows independent).
temperature 0 is greedy decoding; `seed` makes a sample reproducible (such a request runs alone).
A bad request gets a 400 with one line naming the field. Needs the `serve` extra:
pip install "masked-mixers[serve]".

Example:
  masked-mixers serve runs/mixer --port 8000
  curl -s localhost:8000/v1/completions -H 'content-type: application/json' -d '{"prompt": "the dog", "max_tokens": 20}'
  (or any OpenAI client with base_url="http://localhost:8000/v1")
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.errors import UserError
from ..core.options import add_device


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
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long the first waiting request waits for others to batch with",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level",
    )
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:  # checked before the model loads (uvicorn would raise deep inside asyncio)
        raise UserError(f"--port must be a TCP port from 0 to 65535, got {args.port}")
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
        model, tokenizer, max_batch_size=args.max_batch_size, batch_wait_s=args.batch_wait_ms / 1000
    ).start()
    name = args.model_name or Path(args.model_dir).resolve().name
    try:
        uvicorn.run(build_app(engine, name), host=args.host, port=args.port, log_level=args.log_level)
    finally:
        engine.stop()
    return 0
