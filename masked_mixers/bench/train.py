"""Training throughput, model FLOPs utilization and peak memory of masked mixers and Llama.

Examples:
  masked-mixers bench train                                   # small grid, feasible on 2 CPU cores
  masked-mixers bench train --seq-lens 512 --d-models 512 --layers 8 --dtypes fp32,bf16
  masked-mixers bench train --seq-lens 128,512,2048,4096 --d-models 256,512,1024 --batch-size 32

For every (seq_len, d_model) the models of all families (and dtypes) are timed side by side:
their steps are interleaved round-robin, so a machine that slows down slows all of them alike;
tokens/s comes from the median step. MFU divides the analytic training FLOPs
(masked_mixers/bench/flops.py) by a matmul peak measured on the same device, in the same dtype,
in the same run: the best square-matmul probe before and after the timed steps, or the highest
model FLOP/s a contender reached if that is more (timing.mfu_peak), so MFU never reads above 100%.
Peak memory is measured over one extra step (building the model included).
Combinations whose estimated memory exceeds --max-memory-gb, or whose first step is too slow for
--max-seconds, are listed as skipped.

Speed switches, all measured side by side when given as lists: --triangular-tiles 0,128 times the
mixer with the dense token mixing (0) and the blocked lower-triangular one (tile 128) in one run;
--compile wraps every model in torch.compile (the first, untimed steps compile); AdamW is the
fused kernel on CUDA (--no-fused-adamw for the for-each one). Llama runs on --llama-attention
(default sdpa: PyTorch's scaled_dot_product_attention, which picks its flash kernel for bf16 on
CUDA and the memory-efficient one for fp32), named in the output.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics

import torch

from ..core.devices import resolve_device
from ..core.files import atomic_write_json
from ..core.options import add_device, add_output
from ..core.progress import progress_bar
from ..models import FAMILIES
from ..models.masked_mixer import MIXER_TYPES
from ..runs.config import ModelSpec
from ..runs.factory import build_model, spec_for
from .flops import forward_flops_per_token, mfu
from .timing import DTYPES, matmul_peak, mfu_peak, timed

LLAMA_ATTENTION = ("sdpa", "eager", "flex_attention", "flash_attention_2")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _families(text: str) -> list[str]:
    names = _names(text)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown family {', '.join(unknown)} (choose from {', '.join(FAMILIES)})")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--families", type=_families, default=["mixer", "llama"], help=f"comma list of {', '.join(FAMILIES)}"
    )
    parser.add_argument("--seq-lens", type=_ints, default=[128, 512], help="comma list of L")
    parser.add_argument("--d-models", type=_ints, default=[256], help="comma list of d_model")
    parser.add_argument("--layers", type=int, default=4, help="layers of every model")
    parser.add_argument("--num-heads", type=int, default=4, help="Llama attention heads")
    parser.add_argument("--mixer-type", default="flat", choices=MIXER_TYPES, help="token mixing of the masked mixers")
    parser.add_argument("--batch-size", type=int, default=4, help="sequences per training step")
    parser.add_argument("--vocab-size", type=int, default=4096, help="vocabulary of the random models")
    parser.add_argument("--dtypes", type=_names, default=["fp32"], help="comma list of fp32, bf16 (autocast)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model (median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--max-memory-gb", type=float, default=8.0, help="skip combinations estimated above this")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="skip a combination whose steps would take longer"
    )
    parser.add_argument(
        "--triangular-tiles",
        type=_ints,
        default=[0],
        help="comma list of mixer token-mixing tiles; 0 = dense (default 0)",
    )
    parser.add_argument(
        "--llama-attention", default="sdpa", choices=LLAMA_ATTENTION, help="Llama attention kernel (default sdpa)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile every model before timing it")
    parser.add_argument(
        "--no-fused-adamw",
        dest="fused_adamw",
        action="store_false",
        help="for-each AdamW on CUDA instead of the fused kernel",
    )
    add_device(parser, "the benchmark")
    add_output(
        parser,
        folder=False,
        dest="json_out",
        old=("--json",),
        default="runs/bench/train.json",
        help="JSON file with every measurement",
    )


def estimate_bytes(spec: ModelSpec, batch: int, vocab: int) -> int:
    """A rough fp32 upper estimate, only to skip hopeless combinations before building them."""
    d, L, n = spec.hidden_size, spec.seq_len, spec.num_hidden_layers
    params = n * (16 * d * d + L * L) + 2 * vocab * d
    activations = batch * L * (n * d * (2 * spec.ff_mult + 10) + 3 * vocab)
    return 4 * (4 * params + activations)


def _step(model, optimizer, batch, device: str, dtype: str) -> None:
    with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bf16"):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _spec(args, family: str, seq_len: int, d_model: int) -> ModelSpec:
    sizes = dict(
        hidden_size=d_model,
        num_hidden_layers=args.layers,
        seq_len=seq_len,
        num_heads=args.num_heads,
        mixer_type=args.mixer_type,
    )
    return spec_for(family, **sizes)


def _peak_memory(spec: ModelSpec, batch: torch.Tensor, vocab: int, dtype: str) -> int:
    from ..compare.matching import measure_training_memory

    return measure_training_memory(spec, {"input_ids": batch, "labels": batch}, vocab, steps=1, bf16=dtype == "bf16")


def _contenders(args) -> list[tuple[str, str, int]]:
    """(family, dtype, triangular tile) triples; only families with `Capabilities.triangular_tiles` take tiles
    other than 0."""
    out = []
    for family, dtype in itertools.product(args.families, args.dtypes):
        tiles = args.triangular_tiles if FAMILIES[family].capabilities.triangular_tiles else [0]
        out += [(family, dtype, tile) for tile in dict.fromkeys(tiles)]
    return out


def _prepare(args, spec: ModelSpec, tile: int):
    """Model and optimizer with the speed switches applied: tile, Llama's attention, compile, fused AdamW."""
    from ..models.masked_mixer.triangular import set_triangular_tile

    model, params = build_model(spec, args.vocab_size)
    if tile:
        set_triangular_tile(model, tile)
    if FAMILIES[spec.family].capabilities.switchable_attention:
        model.set_attn_implementation(args.llama_attention)
    model.to(args.device).train()
    fused = args.fused_adamw and args.device.startswith("cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused or None)
    return (torch.compile(model) if args.compile else model), optimizer, params


def bench_group(args, seq_len: int, d_model: int, progress) -> list[dict]:
    """Time every (family, dtype, tile) at one (seq_len, d_model), steps interleaved round-robin."""
    rows, runners = [], []
    batch = torch.randint(0, args.vocab_size, (args.batch_size, seq_len), device=args.device)
    for family, dtype, tile in _contenders(args):
        spec = _spec(args, family, seq_len, d_model)
        row = {
            "family": family,
            "seq_len": seq_len,
            "d_model": d_model,
            "layers": args.layers,
            "batch_size": args.batch_size,
            "dtype": dtype,
        }
        if FAMILIES[family].capabilities.triangular_tiles:
            row["triangular_tile"] = tile
        if FAMILIES[family].capabilities.switchable_attention:
            row["attention"] = args.llama_attention
        rows.append(row)
        estimate = estimate_bytes(spec, args.batch_size, args.vocab_size)
        if estimate > args.max_memory_gb * 2**30:
            row["skipped"] = f"estimated {estimate / 2**30:.1f} GB > --max-memory-gb {args.max_memory_gb}"
            continue
        model, optimizer, params = _prepare(args, spec, tile)
        first = [
            timed(functools.partial(_step, model, optimizer, batch, args.device, dtype), args.device)
            for _ in range(max(1, args.warmup))
        ][-1]
        if first * args.steps > args.max_seconds:
            row["skipped"] = (
                f"one step took {first:.1f} s; {args.steps} steps exceed --max-seconds {args.max_seconds:g}"
            )
            continue
        row["parameters"] = params.total
        runners.append((row, spec, model, optimizer, []))
    for _ in range(args.steps):
        for row, _model_spec, model, optimizer, times in runners:
            times.append(
                timed(functools.partial(_step, model, optimizer, batch, args.device, dtype=row["dtype"]), args.device)
            )
            progress.update(1)
    for row, spec, _model, _optimizer, times in runners:
        flops = forward_flops_per_token(spec, args.vocab_size)
        step = statistics.median(times)
        row.update(
            step_seconds=step,
            tokens_per_second=args.batch_size * seq_len / step,
            training_flops_per_token=flops.training,
            mixing_flops_share=(flops.token_mixing + flops.attention) / flops.forward,
        )
        row["model_flops_per_second"] = flops.training * row["tokens_per_second"]  # MFU's numerator
        row["peak_memory_mib"] = _peak_memory(spec, batch, args.vocab_size, row["dtype"]) / 2**20  # dense, uncompiled
    return rows


def _label(row: dict) -> str:
    """family, with the tile of a triangular mixer or Llama's attention kernel."""
    if row.get("triangular_tile"):
        return f"{row['family']}-tri{row['triangular_tile']}"
    if "attention" in row:
        return f"{row['family']}-{row['attention']}"
    return row["family"]


def format_table(rows: list[dict]) -> str:
    head = f"{'family':<12} {'L':>5} {'d':>5} {'dtype':<5} {'tokens/s':>10} {'MFU':>6} {'peak MiB':>9} {'step s':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        prefix = f"{_label(r):<12} {r['seq_len']:>5} {r['d_model']:>5} {r['dtype']:<5}"
        if "skipped" in r:
            lines.append(f"{prefix} skipped: {r['skipped']}")
        else:
            lines.append(
                f"{prefix} {r['tokens_per_second']:>10,.0f} {r['mfu']:>6.1%} {r['peak_memory_mib']:>9,.1f} "
                f"{r['step_seconds']:>7.3f}"
            )
    return "\n".join(lines)


def _peaks(args, probes: dict, rows: list[dict]) -> dict:
    """{dtype: MFU's denominator} from the probes before and after the timed steps and the model
    FLOP/s reached (timing.mfu_peak: MFU <= 100%); each row gets its MFU."""
    peaks = {}
    for dtype, before in probes.items():
        measured = [r for r in rows if r["dtype"] == dtype and "skipped" not in r]
        achieved = [r["model_flops_per_second"] for r in measured]
        peaks[dtype] = peak = mfu_peak([before, matmul_peak(args.device, dtype)], achieved)
        for row in measured:
            row["mfu"] = mfu(row["training_flops_per_token"], row["tokens_per_second"], peak["flops_per_second"])
        print(
            f"matmul peak ({args.device}, {dtype}): {peak['flops_per_second'] / 1e9:,.1f} GFLOP/s "
            f"({peak['source']}; probes {', '.join(f'{p / 1e9:,.1f}' for p in peak['probes'])} at n={peak['n']})"
        )
    return peaks


def run(args: argparse.Namespace) -> int:
    from ..compare.report import environment

    args.device = str(resolve_device(args.device))
    torch.manual_seed(0)
    unknown = [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        from ..core.errors import UserError

        raise UserError(f"--dtypes: unknown {unknown[0]!r} (choose from {', '.join(DTYPES)})")
    if min(args.triangular_tiles, default=0) < 0:
        from ..core.errors import UserError

        raise UserError(f"--triangular-tiles: a tile must be >= 0 (0: dense), got {min(args.triangular_tiles)}")
    probes = {dtype: matmul_peak(args.device, dtype) for dtype in args.dtypes}
    print(
        f"Llama attention: {args.llama_attention}; torch.compile: {args.compile}; "
        f"fused AdamW: {args.fused_adamw and args.device.startswith('cuda')}"
    )
    groups = list(itertools.product(args.seq_lens, args.d_models))
    total = len(groups) * len(args.families) * len(args.dtypes) * args.steps
    rows = []
    with progress_bar(total=total, desc="bench train", unit="step") as progress:
        for seq_len, d_model in groups:
            rows += bench_group(args, seq_len, d_model, progress)
    peaks = _peaks(args, probes, rows)
    table = format_table(rows)
    print(table)
    results = {
        "environment": environment(",".join(args.dtypes)),
        "settings": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "matmul_peak": peaks,
        "rows": rows,
    }
    atomic_write_json(args.json_out, results)
    print(
        f"bench train: {sum('skipped' not in r for r in rows)} measured, "
        f"{sum('skipped' in r for r in rows)} skipped -> {args.json_out}"
    )
    return 0
