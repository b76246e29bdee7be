"""F2: flexibility, which parts each family can lose and still train (`masked-mixers ablate`).

The mixer and Llama (transformers' modules with switchable parts) train whole and without layer
norms, residuals or the feed-forward, and Llama with its feed-forward replaced by attention, all
on the same tokens for the same steps at one modest learning rate, with the Trainer's default
gradient clipping (1.0) as in the paper; once per seed of the scale. Variant: the norm and
residual ablations again without clipping, since clipping can hide the spikes the paper describes.

The claim's words as bands that do not overlap, stated before any run, judged over the seeds
(each seed's ablated run against the whole model of the same seed; fewer than MIN_SEEDS seeds is
inconclusive, and so is every check where a whole model diverged: nothing to compare against):

- "trains very poorly": every seed's run diverged (masked_mixers/training/divergence.py: a NaN/inf
  loss, or one above 3 x ln(vocab)) or its held-out loss is at least POOR (1.15) x the whole
  model's, by the 95% interval of the ratios of the seeds that did not diverge (its low end >= POOR);
- "trains fine, slightly less efficiently": no seed diverged and the interval's high end <= SLIGHT
  (1.05); an interval between or across the bands is neither: inconclusive.
- "unstable, gradients spike" (norms, residuals): on every seed the run diverged, or logged a loss
  spike (a loss above 2 x the running median, probes/ablation.py `loss_spikes`), or its largest
  logged gradient norm (before clipping) is at least SPIKY (10) x the whole model's;
- "no loss spikes" (the mixer without norms): on every seed no divergence, no loss spike, and a
  largest gradient norm at most CALM (3) x the whole model's. Anything else, or seeds that differ,
  is inconclusive.
"""

from __future__ import annotations

import math

from ..core.configfile import save_yaml
from ..core.files import make_dir
from ..runs.config import RunConfig
from .context import Context
from .finding import Finding, Measured
from .verdict import MIN_SEEDS, holds, interval

POOR = 1.15  # "very poor training": a held-out loss at least this many times the whole model's (or a divergence)
SLIGHT = 1.05  # "fine, slightly less efficient": a held-out loss at most this many times the whole model's
SPIKY = 10.0  # "gradients spike": the largest logged gradient norm at least this many times the whole model's
CALM = 3.0  # "no spikes": no loss spike and the largest logged gradient norm at most this many times the whole's
VERY_POOR, FINE, UNSTABLE_RUN, STABLE_RUN = "very poor", "fine", "unstable", "stable"
OPPOSITE = {VERY_POOR: FINE, FINE: VERY_POOR, UNSTABLE_RUN: STABLE_RUN, STABLE_RUN: UNSTABLE_RUN}
UNSTABLE = ("no_layer_norm", "no_residual")
Sweeps = list[dict[tuple[str, str], dict]]  # per seed: {(family, ablation): ablation row}
SPIKES = "unstable; gradients spike to infinity"
NO_NORM_MIXER = "16 layers, fineweb-edu: no loss spikes at a modest lr"
RESIDUALS = "both families suffer severely"
# the protocol's checks on the clipped sweep: (claim, published, family, ablation, expected band)
CLAIMS = (
    (
        "A transformer without its MLPs trains very poorly",
        "the loss does not fall",
        "llama",
        "no_feed_forward",
        VERY_POOR,
    ),
    (
        "A transformer with its MLPs replaced by attention trains very poorly",
        "the loss does not fall",
        "llama",
        "feed_forward_attention",
        VERY_POOR,
    ),
    ("A transformer without layer norms trains very poorly", SPIKES, "llama", "no_layer_norm", VERY_POOR),
    ("A transformer without layer norms trains unstably", SPIKES, "llama", "no_layer_norm", UNSTABLE_RUN),
    (
        "A masked mixer without layer norms trains fine, slightly less efficiently",
        NO_NORM_MIXER,
        "mixer",
        "no_layer_norm",
        FINE,
    ),
    ("A masked mixer without layer norms trains without spikes", NO_NORM_MIXER, "mixer", "no_layer_norm", STABLE_RUN),
    ("Without residuals the transformer suffers severely", RESIDUALS, "llama", "no_residual", VERY_POOR),
    ("Without residuals the transformer trains unstably", SPIKES, "llama", "no_residual", UNSTABLE_RUN),
    ("Without residuals the mixer suffers severely", RESIDUALS, "mixer", "no_residual", VERY_POOR),
)


def _sweep(ctx: Context, folder: str, ablations: list[str], clip: bool, seed: int) -> dict[tuple[str, str], dict]:
    """{(family, ablation): ablation row} of one sweep over both families, for one seed."""
    from ..probes.ablate_runner import AblateRequest, run_ablation

    out = ctx.output_dir / "F2" / f"seed-{seed}" / folder
    make_dir(out)
    config = out / "run.yaml"
    lr = ctx.scale.learning_rate("llama")  # one modest rate for every variant, as the paper's ablations
    save_yaml(
        RunConfig(
            model=ctx.spec("mixer"),
            data=ctx.data(),
            train=ctx.train(ctx.scale.ablation_steps, seed=seed, learning_rate=lr),
        ),
        config,
    )
    rows = run_ablation(
        AblateRequest(config=str(config), families=["mixer", "llama"], ablations=ablations, clip=clip, out=str(out))
    )
    return {(row["family"], row["ablation"]): row for row in rows}


def _reference(wholes: list[dict]) -> str | None:
    """Why the whole models cannot be compared against (one diverged or has no held-out loss), or None."""
    for seed, whole in enumerate(wholes):
        if whole["diverged_at"] is not None:
            return f"no reference (the whole model diverged at step {whole['diverged_at']}, seed {seed})"
        if whole["eval_loss"] is None:
            return f"no reference (the whole model has no held-out loss, seed {seed})"
    return None if len(wholes) >= MIN_SEEDS else f"too few seeds ({len(wholes)}; at least {MIN_SEEDS} needed)"


def _loss_band(wholes: list[dict], rows: list[dict]) -> str:
    """VERY_POOR, FINE, or why neither (see the module docstring)."""
    ratios = []
    for row, whole in zip(rows, wholes):
        if row["diverged_at"] is None and row["eval_loss"] is None:
            return "no held-out loss"
        ratios.append(math.inf if row["diverged_at"] is not None else row["eval_loss"] / whole["eval_loss"])
    finite = [r for r in ratios if math.isfinite(r)]
    low, high = interval(finite) if len(finite) >= 2 else (min(finite, default=math.inf),) * 2
    if low >= POOR:
        return VERY_POOR
    if high <= SLIGHT and len(finite) == len(ratios):
        return FINE
    diverged = len(ratios) - len(finite)
    return f"between the bands (ratio 95% CI [{low:.3f}, {high:.3f}]" + (f", {diverged} diverged)" if diverged else ")")


def _run_stability(row: dict, whole: dict) -> str:
    """One seed: UNSTABLE_RUN, STABLE_RUN or why neither."""
    if row["diverged_at"] is not None or row["loss_spikes"]:
        return UNSTABLE_RUN
    norm, reference = row["largest_grad_norm"], whole["largest_grad_norm"]
    if norm is None or not reference:
        return "no gradient norms logged"
    ratio = norm / reference
    return UNSTABLE_RUN if not ratio < SPIKY else STABLE_RUN if ratio <= CALM else f"between ({ratio:.3g}x the whole's)"


def _stability(wholes: list[dict], rows: list[dict]) -> str:
    """UNSTABLE_RUN or STABLE_RUN when every seed says so, else why not."""
    judged = [_run_stability(row, whole) for row, whole in zip(rows, wholes)]
    return judged[0] if len(set(judged)) == 1 and judged[0] in OPPOSITE else f"seeds differ or undecided: {judged}"


def _values(rows: list[dict], key: str) -> list[float]:
    """The finite values of `key` over the seeds (a diverged run has no held-out loss; its row says so)."""
    return [r[key] for r in rows if r.get(key) is not None and math.isfinite(r[key])]


def _describe(row: dict) -> str:
    loss = "diverged at step {}".format(row["diverged_at"]) if row["diverged_at"] is not None else None
    loss = loss or (f"{row['eval_loss']:.4f}" if row["eval_loss"] is not None else "no eval loss")
    norm = row.get("largest_grad_norm")
    return f"{loss}, {row.get('loss_spikes')} loss spikes, largest grad norm {norm:.3g}" if norm is not None else loss


def _check(claim: str, published: str, sweeps: Sweeps, family: str, ablation: str, expected: str, variant=False):
    """The claim that `family` without `ablation` is `expected`: the other band disagrees, else inconclusive."""
    wholes, rows = [s[(family, "none")] for s in sweeps], [s[(family, ablation)] for s in sweeps]
    stability = expected in (UNSTABLE_RUN, STABLE_RUN)
    judged = _reference(wholes) or (_stability if stability else _loss_band)(wholes, rows)
    ok = {expected: True, OPPOSITE[expected]: False}.get(judged)
    keys = ("largest_grad_norm", "loss_spikes") if stability else ("eval_loss",)
    groups = (("whole", wholes), (ablation, rows))
    measured = {f"{family} {name} {key}": _values(group, key) for name, group in groups for key in keys}
    measured = {k: v for k, v in measured.items() if v}
    per_seed = "; ".join(
        f"seed {i}: {_describe(r)} vs whole {_describe(w)}" for i, (r, w) in enumerate(zip(rows, wholes))
    )
    bands = (
        f"unstable = diverged, a loss spike or >= {SPIKY:g}x the whole's largest grad norm on every seed; stable = "
        f"none of these and <= {CALM:g}x"
        if stability
        else f"very poor = diverged or ratio CI >= {POOR}; fine = no divergence and ratio CI <= {SLIGHT}"
    )
    return holds(claim, published, measured, ok, f"{judged} ({bands}). {per_seed}", variant)


def run(ctx: Context) -> Measured:
    seeds = range(ctx.scale.seeds)
    ablations = ["none", "no_layer_norm", "no_residual", "no_feed_forward", "feed_forward_attention"]
    rows = [_sweep(ctx, "clip", ablations, clip=True, seed=seed) for seed in seeds]
    free = [_sweep(ctx, "no-clip", ["none", *UNSTABLE], clip=False, seed=seed) for seed in seeds]
    checks = [_check(claim, published, rows, *which) for claim, published, *which in CLAIMS]
    checks += [
        _check(
            f"No gradient clipping: {family} without {ablation.removeprefix('no_').replace('_', ' ')}s "
            "trains very poorly",
            "(the paper clipped at 1.0)",
            free,
            family,
            ablation,
            VERY_POOR,
            variant=True,
        )
        for family in ("llama", "mixer")
        for ablation in UNSTABLE
    ]
    checks += [
        _check(f"No gradient clipping: {claim}", published, free, family, ablation, band, variant=True)
        for claim, published, family, ablation, band in CLAIMS
        if band in (UNSTABLE_RUN, STABLE_RUN)
    ]
    table = [
        dict(
            seed=seed,
            clipping=clip,
            family=f,
            ablation=a,
            diverged_at=r["diverged_at"],
            final_loss=r["final_loss"],
            eval_loss=r["eval_loss"],
            largest_grad_norm=r["largest_grad_norm"],
            loss_spikes=r["loss_spikes"],
            steps=r["steps"],
        )
        for clip, sweeps in (("1.0", rows), ("off", free))
        for seed, sweep in enumerate(sweeps)
        for (f, a), r in sweep.items()
    ]
    values = {f"{f} {a}": [sweep[(f, a)]["eval_loss"] for sweep in rows] for (f, a) in rows[0]} if rows else {}
    s = ctx.scale
    return Measured(
        checks=checks,
        table=table,
        budget=f"{s.ablation_steps} steps per variant, batch {s.batch_size} x L {s.seq_len}, "
        f"lr {s.learning_rate('llama'):g}, {s.seeds} seeds",
        headline=dict(metric="held-out loss after the ablation (none: diverged)", lower_is_better=True, values=values),
        artifacts=[f"F2/seed-{seed}/{folder}/ablation.md" for seed in seeds for folder in ("clip", "no-clip")],
    )


FINDING = Finding(
    id="F2",
    title="Flexibility: training without parts",
    claim="In a transformer only attention is removable; without MLPs (or with attention instead), layer norms or "
    f"residuals it trains very poorly (held-out loss >= {POOR}x the whole model's, or a divergence), and without norms "
    f"or residuals unstably (a loss spike above 2x the running median, or a gradient norm >= {SPIKY:g}x the whole "
    f"model's). A masked mixer without layer norms trains fine (<= {SLIGHT}x, no divergence), without spikes; without "
    "residuals both suffer.",
    published="No numbers published: the loss does not fall (no MLP), training is unstable with gradient spikes (no "
    "norms, no residuals); a 16-layer mixer without layer norms trains slightly less efficiently, without spikes at a "
    "modest lr.",
    protocol="`masked-mixers ablate` on both families, once per seed: whole, no_layer_norm, no_residual, "
    "no_feed_forward, and (Llama) feed_forward_attention; same tokens, steps and learning rate; gradient clipping 1.0 "
    "(the HF Trainer default the paper used); fp32 on CPU, the Trainer's bf16 autocast on a GPU (the paper: 16-bit "
    "mixed precision). Per run the held-out loss, divergence, the largest logged gradient norm (before clipping) and "
    "the number of loss spikes. Variant: the norm and residual ablations without clipping.",
    run=run,
)
