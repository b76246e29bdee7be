"""F7: linear mixers. A fully linear masked mixer still learns; a linear model collapses to one layer.

Three models train on the same tokens: a fully linear mixer (no nonlinearity, no norm), a nearly
linear one (one GELU per block) and a one-layer nonlinear mixer. "Still learns" is measured against
the best model that ignores context, the unigram distribution of the training tokens. The trained
linear mixer is then collapsed into one layer: its logits must match the deep model's and greedy
decoding must be faster (median tokens/s of 3 alternating runs, as `bench linear` measures).
"""

from __future__ import annotations

import math
import statistics

import torch

from .context import Context, per_seed
from .finding import Finding, Measured
from .verdict import better, holds

SIDES = ("linear", "near_linear", "mixer-1-layer")


def unigram_loss(ctx: Context) -> float:
    """Held-out CE (nats/token) of the training tokens' unigram distribution: no context at all (data/prepare.py computes it)."""
    from ..data import prepare_data

    return float(prepare_data(ctx.data(), ctx.scale.seq_len).stats["unigram_baseline"])  # cached by the comparisons


def _collapse(row: dict, seq_len: int) -> tuple[float, float]:
    """(max |logit difference| / max |logit|, collapsed / deep greedy tokens per second) of a trained linear mixer."""
    from ..bench.linear import timed_generate
    from ..runs.rundir import load_run

    deep, _ = load_run(row["output_dir"])
    deep.eval()
    collapsed = deep.collapse()
    ids = torch.randint(0, deep.config.vocab_size, (1, seq_len), generator=torch.Generator().manual_seed(0))
    prompt, new = ids[:, : max(1, seq_len // 8)], seq_len - max(1, seq_len // 8)
    with torch.inference_mode():
        a, b = deep(ids).logits, collapsed(ids).logits
        difference = float((a - b).abs().max() / a.abs().max())
        speeds = {"deep": [], "collapsed": []}
        for _ in range(3):  # alternate, so a load change hits both
            for name, model in (("deep", deep), ("collapsed", collapsed)):
                speeds[name].append(timed_generate(model, prompt, new, use_cache=True)[0])
    return difference, statistics.median(speeds["collapsed"]) / statistics.median(speeds["deep"])


def run(ctx: Context) -> Measured:
    s = ctx.scale
    specs = [
        ctx.spec("linear_mixer", name="linear", linear_variant="linear"),
        ctx.spec("linear_mixer", name="near_linear", linear_variant="near_linear"),
        ctx.spec("mixer", name="mixer-1-layer", mixer_type="flat", num_hidden_layers=1),
    ]
    seeds = ctx.seeded("F7", specs, s.linear_steps)
    loss = per_seed(seeds, SIDES)
    unigram = unigram_loss(ctx)
    collapse = [_collapse(rows["linear"], s.seq_len) for rows in seeds]
    differences, speedups = [c[0] for c in collapse], [c[1] for c in collapse]
    collapses = (
        all(d < 1e-4 for d in differences) and all(x > 1 for x in speedups) and all(map(math.isfinite, speedups))
    )
    checks = [
        better(
            "A fully linear masked mixer still learns language (beats every context-free model)",
            "fully linear mixers still generate grammatical TinyStories text",
            "linear",
            loss["linear"],
            "unigram (no context)",
            [unigram] * s.seeds,
        ),
        better(
            "A one-layer nonlinear mixer learns more efficiently than a nearly linear one",
            "TinyStories CE after 1 epoch: nearly linear d 4096 3.25/3.27 vs one-layer nonlinear d 4096 2.51/2.38",
            "mixer-1-layer",
            loss["mixer-1-layer"],
            "near_linear",
            loss["near_linear"],
        ),
        holds(
            "A linear mixer collapses to one layer: the same outputs, one step per token instead of one per layer",
            "generation costs one step instead of one per layer",
            {"max abs logit difference / max abs logit": differences, "collapsed / deep tokens per second": speedups},
            collapses,
            f"relative logit difference <= {max(differences):.2g}; collapsed decoding {min(speedups):.2f}-{max(speedups):.2f}x the deep model's speed",
        ),
    ]
    table = [
        dict(
            seed=i,
            model=side,
            eval_loss=rows[side]["eval_loss"],
            steps=rows[side]["steps"],
            wall_s=rows[side]["train_seconds"],
        )
        for i, rows in enumerate(seeds)
        for side in SIDES
    ] + [dict(seed="-", model="unigram (no context)", eval_loss=unigram)]
    return Measured(
        checks=checks,
        table=table,
        budget=f"{s.linear_steps} steps per model, batch {s.batch_size} x L {s.seq_len}, d_model {s.d_model} (the paper: d 4096-16384)",
        headline=dict(
            metric="held-out loss (nats/token)", lower_is_better=True, values={**loss, "unigram": [unigram] * s.seeds}
        ),
        artifacts=ctx.reports("F7"),
    )


FINDING = Finding(
    id="F7",
    title="Linear mixers",
    claim="Fully linear masked mixers still generate grammatical text; nearly linear ones are only slightly less efficient; a "
    "linear model collapses to one layer, so generation costs one step instead of one per layer.",
    published="Nearly linear conv-GELU-conv, TinyStories CE at d 4096 / 8192 / 16384 after 1 epoch: 3.25/3.27, 3.09/3.04, "
    "3.02/2.94 ... one-layer nonlinear mixer at d 4096 / 8192: 2.51/2.38, 2.36/2.25.",
    protocol="linear_mixer (variant linear: no nonlinearity, no norm), linear_mixer near_linear (one GELU per block) and a "
    "one-layer flat mixer, same tokens and steps; the unigram distribution of the training tokens as the no-context "
    "baseline; the trained linear mixer collapsed (float64 product of its layers) and timed against itself.",
    run=run,
)
