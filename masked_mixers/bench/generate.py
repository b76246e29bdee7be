"""Generation speed of a masked mixer with and without its cache, and of transformers' Llama.

Contenders, all at the same hidden size, layer count, context (seq_len) and vocabulary:

- (a) `mixer-cached`: the masked mixer decoding with its cache (MaskedMixerCache) in generate();
- (b) `mixer-full-window`: the same mixer the paper's way: for every new token, the whole model
  runs over the full L-token window (the text so far, padded on the right to L tokens, the last L
  tokens once the text is longer) and the next token is read off the last real position
  (generation/full_window.py);
- (b') `mixer-no-cache`: generate(use_cache=False): every step recomputes the text so far (a
  window of t <= L tokens, not L) with logits for the last position only. Usually cheaper than
  (b) while t < L, so it is reported beside it as another no-cache baseline;
- (c) `llama-kv-cache`: transformers' LlamaForCausalLM with its own KV cache in generate();
- (d) with --compile: `mixer-compiled`, the same cached mixer decoding greedily through one
  fixed-shape step compiled by torch.compile (generation/compiled.py), on any device; and on a
  GPU also `mixer-cuda-graph`, that step captured as one CUDA graph. Their prefill ms includes
  compiling or capturing (the first contender run, a warm-up, pays the compile itself), and their
  ms/token is (steps time) / (steps), read after one sync.

Every row also quotes the weights-read floor of a decoding step: the bytes of the model's weights
in that dtype (each is read at least once per step) over the device's copy bandwidth measured in
the same run; at batch 1 a decoding step cannot beat it.

Every contender runs under torch.inference_mode(), as inference should. Weights are random (speed
does not depend on them); decoding is greedy with EOS off, so every run makes exactly --new-tokens
tokens after a --prompt-tokens prompt. For each batch size and dtype the contenders run --repeats
times, interleaved.

Reported per row, as medians over the repeats: tokens/s = batch * new tokens / wall time of the
whole run (prompt included); ms/token = median time of one decoding step after the first token
(the time between two tokens, for the whole batch); prefill ms = time to the first token. Ratios
compare tokens/s of (a) with (b), (b') and (c) at the same batch size and dtype.

Example (the defaults): masked-mixers bench generate --output bench-generate.json

With --speculative MODEL_DIR it measures instead a trained model with multi-token prediction heads
(train.objective: mtp, mtp_mode: heads): self-speculative decoding against greedy decoding on the
same model (bench/speculative.py), --new-tokens per prompt, batch 1, --dtypes ignored (fp32).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers.generation.streamers import BaseStreamer

from ..core.devices import resolve_device
from ..core.errors import UserError
from ..core.files import atomic_write_json
from ..core.options import add_device, add_output
from ..generation.full_window import full_window_generate
from ..runs.config import ModelSpec
from ..runs.factory import build_model
from .timing import memory_bandwidth, synchronize

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CONTENDERS = ("mixer-cached", "mixer-full-window", "mixer-no-cache", "llama-kv-cache")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hidden-size", type=int, default=256, help="d_model of every contender")
    parser.add_argument("--layers", type=int, default=4, help="layers of every contender")
    parser.add_argument("--seq-len", type=int, default=512, help="L: the mixer's window and Llama's context")
    parser.add_argument("--prompt-tokens", type=int, default=256, help="random prompt length")
    parser.add_argument("--new-tokens", type=int, default=256, help="tokens generated per run (EOS off)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="batch sizes to measure")
    parser.add_argument(
        "--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp32", "bf16"], help="dtypes to measure"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender (medians reported)")
    parser.add_argument(
        "--mixer-type",
        default="flat",
        choices=("flat", "expanded", "multihead"),
        help="token mixing of the masked mixer",
    )
    parser.add_argument("--heads", type=int, default=4, help="Llama attention heads (and multihead mixer heads)")
    parser.add_argument("--vocab-size", type=int, default=4096, help="vocabulary of the random models")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_output(parser, folder=False, default="bench-generate.json", help="JSON file with every measurement")
    add_device(parser, "the benchmark")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add (d) mixer-compiled: the cached step compiled by torch.compile (and mixer-cuda-graph on a GPU)",
    )
    parser.add_argument(
        "--speculative", metavar="MODEL_DIR", help="time self-speculative decoding of this MTP-heads model instead"
    )


class _StepClock(BaseStreamer):
    """generate() hands a streamer the prompt, then each new token as it is chosen: time those moments.

    On a GPU the clock first waits for the device's queue, so a moment is when the token exists.
    """

    def __init__(self, device: str = "cpu"):
        self.times: list[float] = []
        self.device = device

    def put(self, value) -> None:
        synchronize(self.device)
        self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def _models(args: argparse.Namespace) -> dict:
    common = dict(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        num_hidden_layers=args.layers,
        seq_len=args.seq_len,
        num_heads=args.heads,
    )
    mixer, _ = build_model(ModelSpec(family="mixer", mixer_type=args.mixer_type, **common))
    llama, _ = build_model(ModelSpec(family="llama", **common))
    return {"mixer": mixer.eval().to(args.device), "llama": llama.eval().to(args.device)}


@torch.inference_mode()
def _time_once(model, ids: torch.Tensor, new_tokens: int, use_cache: bool) -> dict:
    clock = _StepClock(str(ids.device))
    synchronize(str(ids.device))
    start = time.perf_counter()
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=use_cache,
        streamer=clock,
        pad_token_id=0,
        eos_token_id=None,
    )
    synchronize(str(ids.device))
    total = time.perf_counter() - start
    assert out.shape[1] == ids.shape[1] + new_tokens
    return _timing(start, clock.times[1:], total)


def _timing(start: float, token_times: list[float], total: float) -> dict:
    """Prefill = time to the first new token; step = median time between two later tokens."""
    steps = [b - a for a, b in zip(token_times, token_times[1:])]
    return {
        "total_s": total,
        "prefill_s": token_times[0] - start,
        "step_s": statistics.median(steps) if steps else total,
    }


def _time_full_window(model, ids: torch.Tensor, new_tokens: int) -> dict:
    times: list[float] = []  # on a GPU these step times are taken without waiting for the device; the total waits
    synchronize(str(ids.device))
    start = time.perf_counter()
    out = full_window_generate(model, ids, new_tokens, times=times)
    synchronize(str(ids.device))
    total = time.perf_counter() - start
    assert out.shape[1] == ids.shape[1] + new_tokens
    return _timing(start, times, total)


def _time_static(model, ids: torch.Tensor, new_tokens: int, mode: str) -> dict:
    from ..generation.compiled import static_greedy_generate

    times: dict = {}
    out = static_greedy_generate(model, ids, new_tokens, mode=mode, times=times)
    assert out.shape[1] == ids.shape[1] + new_tokens
    steps = times.get("timed_steps", 0)
    step = times["steps_s"] / steps if steps else times["total_s"]
    return {"total_s": times["total_s"], "prefill_s": times["prefill_s"] + times.get("setup_s", 0.0), "step_s": step}


def _weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _measure(args: argparse.Namespace, models: dict, batch: int, dtype: str, bandwidth: float) -> list[dict]:
    mixer, llama = models["mixer"].to(args.device, DTYPES[dtype]), models["llama"].to(args.device, DTYPES[dtype])
    ids = torch.randint(1, args.vocab_size, (batch, args.prompt_tokens), generator=torch.Generator().manual_seed(0)).to(
        args.device
    )
    setups = {
        "mixer-cached": lambda n: _time_once(mixer, ids, n, use_cache=True),
        "mixer-full-window": lambda n: _time_full_window(mixer, ids, n),
        "mixer-no-cache": lambda n: _time_once(mixer, ids, n, use_cache=False),
        "llama-kv-cache": lambda n: _time_once(llama, ids, n, use_cache=True),
    }
    if args.compile:
        setups["mixer-compiled"] = lambda n: _time_static(mixer, ids, n, "compile")
        if args.device.startswith("cuda"):
            setups["mixer-cuda-graph"] = lambda n: _time_static(mixer, ids, n, "cuda-graph")
    runs = {name: [] for name in setups}
    for time_run in setups.values():  # warm-up: first calls pay for allocations
        time_run(min(4, args.new_tokens))
    for _ in range(args.repeats):
        for name, time_run in setups.items():
            runs[name].append(time_run(args.new_tokens))
    rows = []
    for name, timings in runs.items():
        total = statistics.median(t["total_s"] for t in timings)
        weights = _weight_bytes(llama if name.startswith("llama") else mixer)
        rows.append(
            {
                "model": name,
                "dtype": dtype,
                "batch_size": batch,
                "weight_bytes": weights,
                "floor_ms": 1e3 * weights / bandwidth,
                "tokens_per_s": batch * args.new_tokens / total,
                "ms_per_token": 1e3 * statistics.median(t["step_s"] for t in timings),
                "prefill_ms": 1e3 * statistics.median(t["prefill_s"] for t in timings),
                "runs": timings,
            }
        )
    return rows


STATIC = {"compiled": "mixer-compiled", "graph": "mixer-cuda-graph"}  # ratio key -> (d) contender


def _ratios(rows: list[dict]) -> list[dict]:
    """Per batch and dtype: tokens/s of (a) over (b), (b') and (c); ms/token of (a) over each (d) contender."""
    out = []
    for batch, dtype in dict.fromkeys((r["batch_size"], r["dtype"]) for r in rows):  # in measuring order
        speed = {r["model"]: r["tokens_per_s"] for r in rows if (r["batch_size"], r["dtype"]) == (batch, dtype)}
        step = {r["model"]: r["ms_per_token"] for r in rows if (r["batch_size"], r["dtype"]) == (batch, dtype)}
        out.append(
            {
                "batch_size": batch,
                "dtype": dtype,
                "cached_vs_full_window": speed["mixer-cached"] / speed["mixer-full-window"],
                "cached_vs_no_cache": speed["mixer-cached"] / speed["mixer-no-cache"],
                "cached_vs_llama": speed["mixer-cached"] / speed["llama-kv-cache"],
                **{
                    f"{key}_vs_cached": step["mixer-cached"] / step[name]
                    for key, name in STATIC.items()
                    if name in step
                },
            }
        )
    return out


def _table(rows: list[dict], ratios: list[dict]) -> str:
    lines = [
        "| model | dtype | batch | tokens/s | ms/token | weights-read floor ms | ms/token over floor | prefill ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['dtype']} | {r['batch_size']} | {r['tokens_per_s']:.0f} | {r['ms_per_token']:.2f} | "
        f"{r['floor_ms']:.3f} | {r['ms_per_token'] / r['floor_ms']:.2f}x | {r['prefill_ms']:.1f} |"
        for r in rows
    ]
    lines += [
        "",
        "| dtype | batch | (a)/(b) cached vs full window | (a)/(b') cached vs no cache "
        "| (a)/(c) cached mixer vs Llama |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['dtype']} | {r['batch_size']} | {r['cached_vs_full_window']:.1f}x | {r['cached_vs_no_cache']:.1f}x "
        f"| {r['cached_vs_llama']:.2f}x |"
        for r in ratios
    ]
    for key, name in STATIC.items():
        measured = [r for r in ratios if f"{key}_vs_cached" in r]
        if measured:
            lines += ["", f"| dtype | batch | (d) {name}: step speed-up over (a) cached |", "|---|---|---|"]
            lines += [f"| {r['dtype']} | {r['batch_size']} | {r[f'{key}_vs_cached']:.2f}x |" for r in measured]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.prompt_tokens < 1 or args.new_tokens < 1 or args.repeats < 1 or min(args.batch_sizes) < 1:
        raise UserError("bench generate: --prompt-tokens, --new-tokens, --repeats and --batch-sizes must be >= 1")
    if args.prompt_tokens > args.seq_len:
        raise UserError(f"bench generate: --prompt-tokens {args.prompt_tokens} exceeds --seq-len {args.seq_len}")
    args.device = str(resolve_device(args.device))
    if args.compile and args.prompt_tokens + args.new_tokens > args.seq_len:
        raise UserError(
            f"bench generate --compile: --prompt-tokens + --new-tokens must fit in --seq-len {args.seq_len} "
            "(no sliding window)"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.speculative:
        return _run_speculative(args)
    torch.manual_seed(0)
    models = _models(args)
    bandwidth = memory_bandwidth(args.device)
    print(f"copy bandwidth ({args.device}): {bandwidth / 1e9:,.1f} GB/s (bytes read + written)")
    rows = [
        row
        for dtype in args.dtypes
        for batch in args.batch_sizes
        for row in _measure(args, models, batch, dtype, bandwidth)
    ]
    ratios = _ratios(rows)
    settings = {k: v for k, v in vars(args).items() if k not in ("command", "benchmark", "output")}
    settings["torch_threads"] = torch.get_num_threads()
    settings["copy_bandwidth_bytes_per_s"] = bandwidth
    print(f"masked-mixers bench generate: {json.dumps(settings)}")
    print(_table(rows, ratios))
    atomic_write_json(args.output, {"settings": settings, "results": rows, "ratios": ratios})
    print(f"wrote {args.output}")
    return 0


def _run_speculative(args: argparse.Namespace) -> int:
    from ..runs.rundir import load_run
    from .speculative import measure_speculative, table

    model, tokenizer = load_run(args.speculative)
    result = measure_speculative(model, tokenizer, args.new_tokens, args.repeats)
    settings = {
        "model_dir": args.speculative,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
    }
    print(f"masked-mixers bench generate --speculative: {json.dumps(settings)}")
    print(table(result))
    atomic_write_json(args.output, {"settings": settings, **result})
    print(f"wrote {args.output}")
    return 0
