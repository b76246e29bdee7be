"""F4's equal compute time, converted into steps by one side-by-side probe of every model's step cost.

The budget is what Llama's `clm_steps` steps cost; each model then trains the whole steps that budget
buys at its own cost per step. Both numbers come from one probe run before the seeds: every F4 model
is built at its F4 size with its optimizer (AdamW, fused on CUDA, clipping at 1.0, bf16 autocast where
the scale trains in it), takes WARMUP_STEPS untimed steps, then ROUNDS rounds of BLOCK steps per
model, the models' order reversed every other round, each block timed with the clock
`train.max_compute_seconds` reads (core/clocks.py: GPU time of the steps on a GPU, this process's
CPU time inside them on a CPU). A model's cost is the median of its blocks.

Why a probe and not the learning-rate sweep's timings: process CPU time is not robust to load on a
shared machine (OpenMP threads spin while they wait, caches are contended). On a loaded 2-core
machine the sweep's GPT-2 runs of 62 identical steps took 30 to 91 CPU seconds, and a plan built from
the sweep (each model's runs timed at other moments, under other load) gave the mixer about 1.3x
Llama's compute in the seeds. Interleaved blocks see the same load: a machine that slows down slows
every model alike, and the median drops the blocks a burst of load hit.

Why steps and no time limit: a compute-time limit would be read again during each seed, under that
seed's load, and stop a model early or late by noise; a step limit is deterministic, keeps each
model's learning-rate schedule and warmup fitted to its own run, and a resumed run stops at exactly
the same step. The probe is saved (OUTPUT_DIR/F4/PROBE_FILE) and reused by a resumed run of the same
models and code, so the plan, and with it every trained seed, is kept. After the seeds the finding
reports each model's realized compute seconds and their ratio to Llama's, flagged beyond FLAG.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.clocks import TrainingClocks
from ..core.configfile import to_dict
from ..core.files import atomic_write_json
from ..runs import manifest
from ..runs.config import ModelSpec
from ..runs.factory import build_model
from .context import Context

ROUNDS = 5  # timed rounds; each times one block of every model
BLOCK = 3  # steps per timed block
WARMUP_STEPS = 2  # untimed steps per model first (allocator, kernels, lazy optimizer state)
FLAG = 0.15  # a realized compute ratio to Llama's further than this from 1 is flagged in the notes
PROBE_FILE = "step-cost-probe.json"
REFERENCE = "llama"


@dataclass(frozen=True)
class TimePlan:
    """Equal compute time as step limits, and the probe they come from."""

    seconds: float  # the budget: Llama's median seconds per step x clm_steps
    steps: dict  # {side: whole steps the budget buys at its median seconds per step}
    blocks: dict  # {side: seconds per step of each timed block, in the order they ran}
    clock: str  # "GPU" or "CPU"

    def per_step(self, side: str) -> float:
        return statistics.median(self.blocks[side])


def plan(blocks: dict[str, list[float]], reference_steps: int, clock: str) -> TimePlan:
    """The budget (REFERENCE's median per-step seconds x reference_steps) and each side's floor(budget / own median)."""
    median = {side: statistics.median(times) for side, times in blocks.items()}
    budget = median[REFERENCE] * reference_steps
    # the ratio is rounded first, so that the reference gets exactly reference_steps despite float error
    steps = {side: max(1, math.floor(round(reference_steps * median[REFERENCE] / m, 9))) for side, m in median.items()}
    return TimePlan(budget, steps, blocks, clock)


def measure_step_costs(
    steps: dict[str, Callable[[], None]], rounds: int = ROUNDS, block: int = BLOCK, warmup: int = WARMUP_STEPS
) -> dict[str, list[float]]:
    """{side: seconds per step of each of its `rounds` blocks}: the sides' blocks interleaved, the order reversed
    every other round, timed by TrainingClocks.compute (the clock of train.max_compute_seconds)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    clocks, blocks, order = TrainingClocks(), {side: [] for side in steps}, list(steps)
    clocks.start()
    for r in range(rounds):
        for side in order if r % 2 == 0 else order[::-1]:
            before = clocks.compute()
            for _ in range(block):
                clocks.step_begin()
                steps[side]()
                clocks.step_end()
            blocks[side].append((clocks.compute() - before) / block)
    return blocks


def training_step(spec: ModelSpec, batch: dict[str, torch.Tensor], vocab_size: int, bf16: bool) -> Callable[[], None]:
    """One optimizer step of a fresh model of `spec` on `batch`, as the Trainer takes it (AdamW, fused on CUDA;
    gradients clipped at 1.0; bf16 autocast when `bf16`)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = {k: v.to(device) for k, v in batch.items()}  # (batch_size, seq_len) each
    torch.manual_seed(0)
    model, _ = build_model(spec, vocab_size)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda" or None)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def time_plan(ctx: Context, models: list[ModelSpec], batch: dict[str, torch.Tensor], bf16: bool) -> TimePlan:
    """The plan from this run's probe: the saved one when it probed the same models with the same code, else a
    new probe (saved under OUTPUT_DIR/F4, never over a file masked-mixers did not write)."""
    clock = "GPU" if torch.cuda.is_available() else "CPU"
    identity = dict(
        models=[to_dict(spec) for spec in models],
        batch=list(batch["input_ids"].shape),
        vocab_size=ctx.scale.vocab_size,
        bf16=bf16,
        clock=clock,
        rounds=ROUNDS,
        block=BLOCK,
        warmup=WARMUP_STEPS,
    )
    identity = json.loads(json.dumps(identity))
    folder = ctx.output_dir / "F4"
    blocks = _saved_blocks(ctx, folder / PROBE_FILE, identity, [spec.label for spec in models])
    if blocks is None:
        manifest.check_own(folder, PROBE_FILE)  # before the probe: a file of the user's there is refused at once
        print(f"[reproduce] F4: probing the step cost of {', '.join(s.label for s in models)} side by side", flush=True)
        steps = {spec.label: training_step(spec, batch, ctx.scale.vocab_size, bf16) for spec in models}
        blocks = measure_step_costs(steps)
        del steps  # the probe's models and optimizer state go before the seeds train
        manifest.record(folder, PROBE_FILE, what="reproduce")
        atomic_write_json(folder / PROBE_FILE, dict(identity=identity, code_sha256=ctx.code_sha256, blocks=blocks))
    else:
        print(f"[reproduce] F4: reusing the step-cost probe {folder / PROBE_FILE} (same models and code)", flush=True)
    return plan(blocks, ctx.scale.clm_steps, clock)


def _saved_blocks(ctx: Context, path, identity: dict, labels: list[str]) -> dict[str, list[float]] | None:
    """The saved probe's blocks when it probed `identity` with this code (Context.same_code), else None."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved["identity"] == identity and ctx.same_code(saved.get("code_sha256")):
            return {side: [float(t) for t in saved["blocks"][side]] for side in labels}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def describe(plan: TimePlan, sides) -> str:
    """Each side's median seconds per step, its blocks' range, and its steps."""
    return ", ".join(
        f"{side} {plan.per_step(side):.4g} s/step (blocks {min(plan.blocks[side]):.4g}-{max(plan.blocks[side]):.4g})"
        f" -> {plan.steps[side]} steps"
        for side in sides
    )


def realized_notes(seeds: list[dict[str, dict]], sides) -> list[str]:
    """Per seed: each side's realized compute seconds and its ratio to Llama's, flagged beyond FLAG."""
    notes = []
    for i, rows in enumerate(seeds):
        reference = rows[REFERENCE].get("compute_seconds")
        cells, off = [], []
        for side in sides:
            spent = rows[side].get("compute_seconds")
            ratio = spent / reference if spent is not None and reference else None
            shown = "n/a" if spent is None else f"{spent:.4g} s"
            cells.append(f"{side} {shown}" + ("" if ratio is None else f" ({ratio:.2f}x Llama)"))
            if ratio is not None and abs(ratio - 1) > FLAG:
                off.append(side)
        flag = f" FLAGGED: {', '.join(off)} beyond +-{FLAG:.0%} of Llama's compute" if off else ""
        notes.append(f"equal compute time, seed {i}: realized compute seconds " + ", ".join(cells) + flag)
    return notes


__all__ = ["TimePlan", "describe", "measure_step_costs", "plan", "realized_notes", "time_plan", "training_step"]
