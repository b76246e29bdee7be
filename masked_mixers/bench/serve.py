"""A bounded load test of `masked-mixers serve`: ways of serving (--modes) side by side.

Modes: `static` (--batching static), `continuous` (--batching continuous) and `compiled`
(continuous batching with --compile: the torch.compile'd step; its compiling, before the server
answers, is not timed). For each repeat and mode (the order reverses between repeats) a fresh server
process serves RUN_DIR on 127.0.0.1 and --clients concurrent clients send --requests greedy
completions between them: prompts of mixed length (2 to --max-prompt-words words of a fixed story)
and max_tokens drawn from --max-tokens, the same requests in the same order for every mode. Reported
per mode (medians over repeats): throughput (completion tokens per second of wall clock), p50 and
p99 request latency, the median request's milliseconds per completion token, the server's peak
resident memory (the kernel's high-water mark, VmHWM) and its CPU seconds; and the throughput ratio
of every mode over each mode listed before it, per repeat, with a 95% interval (t over repeats). Every mode
must return the same text for every request (greedy, and a request's text does not depend on its
batch or step): a mismatch is a bug, not a speed result, and fails the benchmark.

The clients run in this process and share the CPU with the server: on a small machine they cost
throughput in every mode alike. Examples:
  masked-mixers bench serve runs/mixer --clients 64 --requests 192 --repeats 3
  masked-mixers bench serve runs/mixer --modes continuous,compiled --clients 1 --requests 16   (batch 1)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from ..core.errors import UserError
from ..core.files import atomic_write_json
from ..core.options import add_device, add_output
from ..core.stats import interval

MODES = {  # mode -> the server's flags
    "static": ["--batching", "static"],
    "continuous": ["--batching", "continuous"],
    "compiled": ["--batching", "continuous", "--compile"],
}
STORY = (
    "once upon a time there was a little girl named lily who loved to play in the park with her dog max . one day "
    "they found a big red ball under a tree and lily wanted to share it with her friend tom , so they ran to his "
    "house and played together until the sun went down and their moms called them home for dinner"
).split()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a trained run (a mixer serves both ways; other families only statically)")
    parser.add_argument(
        "--modes",
        default="static,continuous",
        help=f"ways of serving, separated by commas, from {', '.join(MODES)}; each is compared with those before it",
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=192, help="requests per mode and repeat")
    parser.add_argument("--max-tokens", default="8,32,128", help="max_tokens values, drawn at random per request")
    parser.add_argument("--max-prompt-words", type=int, default=40, help="longest prompt, in words of the story")
    parser.add_argument("--max-batch-size", type=int, default=8, help="the server's --max-batch-size, every mode")
    parser.add_argument(
        "--server-threads", type=int, default=None, help="the server's --threads, every mode (default: serve's default)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="fresh servers per mode (medians, interval over them)")
    parser.add_argument("--seed", type=int, default=0, help="draws the prompts and max_tokens")
    add_output(parser, folder=False, default="bench-serve.json", help="JSON file with every measurement")
    add_device(parser, "the server")


def modes_of(text: str) -> list[str]:
    """--modes as a list; a UserError naming an unknown or repeated mode."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or len(set(modes)) != len(modes) or not modes:
        raise UserError(f"bench serve: --modes must be distinct names from {', '.join(MODES)}, got {text!r}")
    return modes


def _lengths(text: str) -> list[int]:
    try:
        lengths = [int(v) for v in text.split(",")]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise UserError(f"bench serve: --max-tokens must be positive integers separated by commas, got {text!r}")
    return lengths


def requests(args) -> list[dict]:
    """The load: the same greedy requests, in the same order, for every mode."""
    lengths = _lengths(args.max_tokens)
    rng = random.Random(args.seed)
    words = max(2, min(args.max_prompt_words, len(STORY)))
    return [
        {"prompt": " ".join(STORY[: rng.randint(2, words)]), "max_tokens": rng.choice(lengths), "temperature": 0}
        for _ in range(args.requests)
    ]


def _peak_rss(pid: int) -> int | None:
    """The process's resident high-water mark in bytes (Linux); None where /proc has none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def load(base: str, body: list[dict], clients: int) -> dict:
    """Send `body` from `clients` threads; texts, latencies, tokens and wall time."""
    import httpx

    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=clients)) as client:

        def one(request: dict) -> tuple[str, int, float]:  # text, completion tokens, seconds
            start = time.perf_counter()
            response = client.post(f"{base}/v1/completions", json=request)
            if response.status_code != 200:
                raise UserError(f"bench serve: the server answered {response.status_code}: {response.text[:300]}")
            answer = response.json()
            return answer["choices"][0]["text"], answer["usage"]["completion_tokens"], time.perf_counter() - start

        one({**body[0], "max_tokens": 2})  # warm-up: the first request pays for lazy initialisation
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(one, body))
        wall = time.perf_counter() - start
    latencies = sorted(r[2] for r in results)
    tokens = sum(r[1] for r in results)
    per_token = [r[2] / r[1] for r in results if r[1]]
    return {
        "texts": [r[0] for r in results],
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "ms_per_token": 1000 * statistics.median(per_token) if per_token else None,
    }


def measure(args, mode: str, body: list[dict], log_dir: Path) -> dict:
    """One fresh server in `mode`, loaded once: the load's numbers plus the server's peak memory and CPU."""
    from ..serving.launch import ServerFailed, server_process

    flags = [*MODES[mode], "--max-batch-size", str(args.max_batch_size), "--log-level", "warning"]
    flags += ["--max-queue", str(max(256, len(body))), *(["--device", args.device] if args.device else [])]
    flags += ["--threads", str(args.server_threads)] if args.server_threads else []
    try:
        with server_process(args.run_dir, *flags, log_path=log_dir / f"server-{mode}.log") as (base, process):
            server = psutil.Process(process.pid)
            cpu_before = sum(server.cpu_times()[:2])
            result = load(base, body, args.clients)
            result["server_cpu_s"] = sum(server.cpu_times()[:2]) - cpu_before
            peak = _peak_rss(process.pid)
            result["peak_rss_mib"] = None if peak is None else peak / 2**20
    except ServerFailed as err:
        last = [line for line in str(err).splitlines() if line.strip()][-1]
        raise UserError(f"bench serve: the {mode} server failed: {last}") from None
    return {"mode": mode, **result}


def _summary(runs: list[dict], modes: list[str]) -> dict:
    by_mode = {m: [r for r in runs if r["mode"] == m] for m in modes}
    table = {
        mode: {
            key: statistics.median(r[key] for r in rows)
            for key in ("tokens_per_s", "p50_s", "p99_s", "ms_per_token", "server_cpu_s", "peak_rss_mib")
            if all(r[key] is not None for r in rows)
        }
        for mode, rows in by_mode.items()
    }
    ratios = {
        f"{mode}/{base}": [r["tokens_per_s"] / b["tokens_per_s"] for r, b in zip(by_mode[mode], by_mode[base])]
        for i, mode in enumerate(modes)
        for base in modes[:i]
    }
    intervals = {name: list(interval(values)) for name, values in ratios.items() if len(values) >= 2}
    return {"table": table, "throughput_ratios": ratios, "throughput_ratio_intervals": intervals}


def run(args: argparse.Namespace) -> int:
    from ..runs.rundir import load_model_config

    threads = 1 if args.server_threads is None else args.server_threads
    if min(args.clients, args.requests, args.repeats, threads) < 1:
        raise UserError("bench serve: --clients, --requests, --repeats and --server-threads must be >= 1")
    modes = modes_of(args.modes)
    load_model_config(args.run_dir)  # a missing or damaged run is one line here, not a server's traceback
    body, runs = requests(args), []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as logs:
        for repeat in range(args.repeats):
            for mode in modes if repeat % 2 == 0 else modes[::-1]:
                runs.append({"repeat": repeat, **measure(args, mode, body, Path(logs))})
                print(f"[bench serve] repeat {repeat} {mode}: {runs[-1]['tokens_per_s']:.0f} tokens/s", flush=True)
    reference = runs[0]["texts"]
    if any(r["texts"] != reference for r in runs):
        raise AssertionError("bench serve: the modes returned different texts for the same greedy requests (a bug)")
    summary = _summary(runs, modes)
    _print(args, summary)
    settings = {k: v for k, v in vars(args).items() if k not in ("command", "benchmark", "output")}
    atomic_write_json(args.output, {"settings": settings, **summary, "runs": [_without_texts(r) for r in runs]})
    return 0


def _without_texts(run: dict) -> dict:
    return {k: v for k, v in run.items() if k != "texts"}


def _print(args, summary: dict) -> None:
    print(
        f"\nserve load test: {args.requests} greedy requests from {args.clients} clients, max_tokens "
        f"{{{args.max_tokens}}}, --max-batch-size {args.max_batch_size}, "
        f"{args.repeats} fresh servers per mode (medians), server threads {args.server_threads or 'torch default'}"
    )
    header = f"{'mode':12s} {'tokens/s':>9s} {'p50 s':>7s} {'p99 s':>7s} {'ms/token':>9s} {'server CPU s':>12s}"
    print(f"{header} {'peak MiB':>9s}")
    for mode, row in summary["table"].items():
        peak = f"{row['peak_rss_mib']:9.0f}" if "peak_rss_mib" in row else f"{'n/a':>9s}"
        per_token = f"{row['ms_per_token']:9.2f}" if "ms_per_token" in row else f"{'n/a':>9s}"
        print(
            f"{mode:12s} {row['tokens_per_s']:9.0f} {row['p50_s']:7.2f} {row['p99_s']:7.2f} {per_token} "
            f"{row['server_cpu_s']:12.1f} {peak}"
        )
    for name, values in summary["throughput_ratios"].items():
        low_high = summary["throughput_ratio_intervals"].get(name)
        span = f", 95% interval [{low_high[0]:.2f}, {low_high[1]:.2f}]" if low_high else ""
        print(f"throughput {name} per repeat: {', '.join(f'{r:.2f}' for r in values)}{span}")
