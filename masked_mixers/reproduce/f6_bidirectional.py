"""F6: bidirectional language models, each token predicted from both sides without seeing itself.

A bidirectional mixer and a bidirectional Llama (a causal and an anti-causal stream kept apart
through every block, added before the head) train on the same tokens, and beside them a causal
mixer and a causal Llama of the same sizes, in the same comparison: the same tokens, seeds and
number of steps, so both gaps are step-matched. The paper's claim is relative: the
mixer-vs-transformer gap is about what it is for causal models. Per seed the relative gap
mixer/llama - 1 is taken for each kind, and "about the same" is an equivalence test under the
interval rule of verdict.py: the 95% interval of the mean difference (bidirectional gap - causal
gap) must lie inside +-SAME to agree, wholly outside it to disagree. Leak check: a model that lets
the target into its own prediction drives the loss below 0.1 quickly; separated streams must not.
"""

from __future__ import annotations

import math
import statistics

from .context import Context, per_seed
from .f4_clm import PARITY
from .finding import Finding, Measured
from .verdict import AGREES, DISAGREES, INCONCLUSIVE, MIN_SEEDS, Check, better, holds, interval

LEAK = 0.1  # the paper: combining the streams inside blocks gave CE below 0.1 within half an epoch
SAME = 0.05  # "about the same": the two kinds' relative gaps (mixer/llama - 1) differ by less than 5 points
SIDES = ("mixer", "llama", "causal-mixer", "causal-llama")
SAME_CLAIM = "Mixer-vs-transformer performance is about the same as for causal language models (step-matched)"
SAME_PUBLISHED = "relative performance about the same as causal LMs (no numbers published)"


def _relative(mixer: list, llama: list) -> list[float | None]:
    """Per seed mixer/llama - 1 (> 0: the mixer's loss is higher); None where either run has no loss."""
    return [m / t - 1 if m is not None and t is not None else None for m, t in zip(mixer, llama)]


def same_relative(bidirectional: list, causal: list, band: float = SAME) -> Check:
    """The equivalence check: mean (bidirectional gap - causal gap) over seeds within +-band, by its 95% interval."""
    measured = {"bidirectional mixer/llama - 1": list(bidirectional), "causal mixer/llama - 1": list(causal)}
    if any(v is None or not math.isfinite(v) for v in [*bidirectional, *causal]) or not bidirectional:
        return Check(SAME_CLAIM, SAME_PUBLISHED, measured, INCONCLUSIVE, "no finite gap (a run failed or diverged)")
    differences = [b - c for b, c in zip(bidirectional, causal)]
    detail = (
        f"mean difference of the gaps {statistics.fmean(differences):+.4f} (band +-{band:.2f}; n {len(differences)}"
    )
    if len(differences) < MIN_SEEDS:
        reason = f"too few seeds: {detail}, at least {MIN_SEEDS} needed)"
        return Check(SAME_CLAIM, SAME_PUBLISHED, measured, INCONCLUSIVE, reason, gaps=differences, n=len(differences))
    low, high = interval(differences)
    if -band < low and high < band:
        verdict, meaning = AGREES, "interval inside the band"
    elif low >= band or high <= -band:
        verdict, meaning = DISAGREES, "interval outside the band"
    else:
        verdict, meaning = INCONCLUSIVE, "interval crosses the band's edge"
    reason = f"{detail}, 95% CI [{low:+.4f}, {high:+.4f}]: {meaning})"
    return Check(
        SAME_CLAIM,
        SAME_PUBLISHED,
        measured,
        verdict,
        reason,
        gaps=differences,
        n=len(differences),
        interval=[low, high],
    )


def specs(ctx: Context) -> list:
    return [
        ctx.spec("bidirectional_mixer", name="mixer", mixer_type="flat"),
        ctx.spec("bidirectional_llama", name="llama"),
        ctx.spec("mixer", name="causal-mixer", mixer_type="flat"),
        ctx.spec("llama", name="causal-llama"),
    ]


def run(ctx: Context) -> Measured:
    s = ctx.scale
    seeds = ctx.seeded("F6", specs(ctx), s.bidirectional_steps)
    loss = per_seed(seeds, SIDES)
    bidirectional = loss["mixer"] + loss["llama"]
    checks = [
        same_relative(_relative(loss["mixer"], loss["llama"]), _relative(loss["causal-mixer"], loss["causal-llama"])),
        holds(
            "Keeping the two streams apart does not leak the target",
            f"a leak drives CE below {LEAK} within half an epoch",
            {side: loss[side] for side in ("mixer", "llama")},
            None not in bidirectional and min(bidirectional) > LEAK,
            f"lowest held-out loss {min((v for v in bidirectional if v is not None), default=float('nan')):.3f} "
            f"(> {LEAK}: no leak)",
        ),
        better(
            "Bidirectional mixer vs bidirectional Llama (direction only; the paper's claim is the relative one above)",
            "-",
            "mixer",
            loss["mixer"],
            "llama",
            loss["llama"],
            tolerance=PARITY,
            variant=True,
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
    ]
    return Measured(
        checks=checks,
        table=table,
        budget=f"{s.bidirectional_steps} steps per model (bidirectional and causal alike: step-matched), batch "
        f"{s.batch_size} x L {s.seq_len}",
        headline=dict(metric="held-out loss (nats/token)", lower_is_better=True, values=loss),
        artifacts=ctx.reports("F6"),
    )


FINDING = Finding(
    id="F6",
    title="Bidirectional language models",
    claim="With a forward and a backward stream kept separate through every block, the mixer-vs-transformer comparison "
    "comes out about as it does for causal language models; combining the streams inside blocks leaks the target.",
    published="No numbers: relative performance about the same as causal LMs; combining streams inside blocks gives CE "
    "below 0.1 within half an epoch (a leak).",
    protocol="bidirectional_mixer and bidirectional_llama (causal and anti-causal streams, the backward one excluding "
    "the target, added only before the head) and a causal mixer and Llama, all of equal sizes, trained in one "
    "comparison per seed: same tokens and steps, per-family learning rates. 'About the same': per seed the relative "
    f"gap mixer/llama - 1 of each kind; the 95% interval of the mean difference (bidirectional - causal) inside "
    f"+-{SAME}.",
    run=run,
)
