"""F7: linear mixers. A fully linear masked mixer still learns; a linear model collapses to one layer.

The reference's architectures (blbadger/maskedmixers `mixer_lm/linear_mixer.py`; models/linear_mixer):
a fully linear mixer, blocks of x + W x (W a causal L x L mixing over positions, no norm, no feature
feed-forward), and a nearly linear one, blocks of x + conv(L->L) -> GELU -> conv(L->L) over positions
(both causal, no norm, no feature feed-forward). Each trains at depth 1 (the reference's depth)
against a one-layer nonlinear masked mixer (norms, feature feed-forward) of the same width, on the
same tokens for the same steps: equal depth, as the paper's comparison is fair only there.
"Still learns" is measured against the best model that ignores context, the unigram distribution
of the training tokens. A fourth model, a fully linear mixer of the scale's depth trained the same
way, is collapsed into one layer: its logits must match the deep model's and greedy decoding must
be faster (median tokens/s of 3 alternating runs, as `bench linear` measures).
"""

from __future__ import annotations

import math
import statistics

import torch

from .context import Context, per_seed
from .finding import Finding, Measured
from .verdict import FAR, better, holds

SIDES = ("linear", "near_linear", "mixer-1-layer")  # depth 1 each: the comparison
DEEP = "linear-deep"  # the scale's depth: what the collapse shrinks
PUBLISHED = (
    "as an earlier revision of the post gave them (its table's layout is ambiguous: rough magnitudes): "
    "nearly linear conv-GELU-conv at d 4096 / 8192 / 16384, three epochs: 3.25/3.27/3.24, 3.09/3.04/3.00, "
    "3.02/2.94/2.87; a one-layer nonlinear mixer at d 4096 / 8192: 2.51/2.38, 2.36/2.25, 2.28/2.16"
)


def unigram_loss(ctx: Context) -> float:
    """Held-out CE (nats/token) of the training tokens' unigram distribution: no context at all.

    data/prepare.py computes it."""
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


def specs(ctx: Context) -> list:
    """The three depth-1 models compared, and the deep linear mixer the collapse is checked on."""
    return [
        ctx.spec("linear_mixer", name="linear", linear_variant="linear", num_hidden_layers=1),
        ctx.spec("linear_mixer", name="near_linear", linear_variant="near_linear", num_hidden_layers=1),
        ctx.spec("mixer", name="mixer-1-layer", mixer_type="flat", num_hidden_layers=1),
        ctx.spec("linear_mixer", name=DEEP, linear_variant="linear"),
    ]


def _collapse_check(seeds: list[dict[str, dict]], seq_len: int):
    collapse = [_collapse(rows[DEEP], seq_len) for rows in seeds]
    differences, speedups = [c[0] for c in collapse], [c[1] for c in collapse]
    collapses = (
        all(d < 1e-4 for d in differences) and all(x > 1 for x in speedups) and all(map(math.isfinite, speedups))
    )
    return holds(
        "A linear mixer collapses to one layer: the same outputs, one step per token instead of one per layer",
        "generation costs one step instead of one per layer",
        {"max abs logit difference / max abs logit": differences, "collapsed / deep tokens per second": speedups},
        collapses,
        f"{DEEP}: relative logit difference <= {max(differences):.2g}; collapsed decoding "
        f"{min(speedups):.2f}-{max(speedups):.2f}x the deep model's speed",
    )


def run(ctx: Context) -> Measured:
    s = ctx.scale
    models = specs(ctx)
    depth = {spec.name: spec.num_hidden_layers for spec in models}
    seeds = ctx.seeded("F7", models, s.linear_steps)
    loss = per_seed(seeds, SIDES)
    unigram = [unigram_loss(ctx)] * s.seeds
    checks = [
        better(
            "A fully linear masked mixer still learns language (beats every context-free model)",
            "fully linear mixers still generate grammatical TinyStories text",
            "linear",
            loss["linear"],
            "unigram (no context)",
            unigram,
        ),
        better(
            f"A nearly linear masked mixer learns far below the unigram baseline (by more than {FAR:.0%})",
            "nearly linear ones are only slightly less efficient; " + PUBLISHED,
            "near_linear",
            loss["near_linear"],
            "unigram (no context)",
            unigram,
            effect=FAR,
        ),
        better(
            "At equal depth (1), width and steps a nonlinear mixer learns more than a nearly linear one",
            PUBLISHED,
            "mixer-1-layer",
            loss["mixer-1-layer"],
            "near_linear",
            loss["near_linear"],
        ),
        better(
            "At equal depth (1), width and steps a nonlinear mixer learns more than a fully linear one "
            "(no claim of the paper: context for the one above)",
            "-",
            "mixer-1-layer",
            loss["mixer-1-layer"],
            "linear",
            loss["linear"],
            variant=True,
        ),
        _collapse_check(seeds, s.seq_len),
    ]
    table = [
        dict(
            seed=i,
            model=side,
            layers=depth[side],
            eval_loss=rows[side]["eval_loss"],
            steps=rows[side]["steps"],
            wall_s=rows[side]["train_seconds"],
        )
        for i, rows in enumerate(seeds)
        for side in (*SIDES, DEEP)
    ] + [dict(seed="-", model="unigram (no context)", eval_loss=unigram[0])]
    return Measured(
        checks=checks,
        table=table,
        budget=f"{s.linear_steps} steps per model, batch {s.batch_size} x L {s.seq_len}, d_model {s.d_model} "
        f"(the paper: d 4096-16384); depth 1 for the three compared, {s.layers} for {DEEP}",
        headline=dict(
            metric="held-out loss (nats/token)",
            lower_is_better=True,
            values={**loss, DEEP: [rows[DEEP]["eval_loss"] for rows in seeds], "unigram": unigram},
        ),
        artifacts=ctx.reports("F7"),
    )


FINDING = Finding(
    id="F7",
    title="Linear mixers",
    claim="Fully linear masked mixers still generate grammatical text; nearly linear ones (one GELU) are only slightly "
    "less efficient: somewhat worse than a nonlinear mixer at equal width, depth and steps, yet far below the unigram "
    "baseline; a linear model collapses to one layer, so generation costs one step instead of one per layer.",
    published=PUBLISHED[0].upper() + PUBLISHED[1:] + ".",
    protocol="The reference's architectures at depth 1: linear_mixer variant linear (blocks of x + W x, W a causal "
    "L x L mixing over positions; no nonlinearity, no norm, no feature feed-forward) and variant near_linear (blocks "
    "of x + conv(L->L) -> GELU -> conv(L->L) over positions, both causal; no norm, no feature feed-forward), each "
    "against a one-layer nonlinear flat masked mixer of the same width; same tokens, steps and learning rate (the "
    "mixers'); the unigram distribution of the training tokens as the no-context baseline; a fully linear mixer of "
    "the scale's depth, trained the same way, collapsed (float64 product of its layers) and timed against itself.",
    run=run,
)
