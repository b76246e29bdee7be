"""F2: flexibility, which parts each family can lose and still train (`masked-mixers ablate`).

The mixer and Llama (transformers' modules with switchable parts) train whole and without layer
norms, residuals or the feed-forward, and Llama with its feed-forward replaced by attention, all
on the same tokens for the same steps at one modest learning rate, with the Trainer's default
gradient clipping (1.0) as in the paper. Variant: the norm and residual ablations again without
clipping, since clipping can hide the spikes the paper describes.

The claim's words as bands that do not overlap, stated before any run: "trains very poorly" is a
run that diverged (masked_mixers/training/divergence.py: a NaN/inf loss, or one above 3 x ln(vocab)) or a
held-out loss at least POOR (1.15) x the whole model's; "trains fine, slightly less efficiently"
is no divergence and a held-out loss at most SLIGHT (1.05) x the whole model's. A ratio between
the two bands is neither, and the check is inconclusive; so is every check whose whole model
diverged, since then there is nothing to compare against.
"""

from __future__ import annotations

from ..core.configfile import save_yaml
from ..core.files import make_dir
from ..runs.config import RunConfig
from .context import Context
from .finding import Finding, Measured
from .verdict import holds

POOR = 1.15  # "very poor training": a held-out loss at least this many times the whole model's (or a divergence)
SLIGHT = 1.05  # "fine, slightly less efficient": a held-out loss at most this many times the whole model's
VERY_POOR, FINE = "very poor", "fine"
UNSTABLE = ("no_layer_norm", "no_residual")


def _sweep(ctx: Context, folder: str, ablations: list[str], clip: bool) -> dict[tuple[str, str], dict]:
    """{(family, ablation): ablation row} of one sweep over both families."""
    from ..probes.ablate_runner import AblateRequest, run_ablation

    out = ctx.output_dir / "F2" / folder
    make_dir(out)
    config = out / "run.yaml"
    lr = ctx.scale.learning_rate("llama")  # one modest rate for every variant, as the paper's ablations
    save_yaml(
        RunConfig(
            model=ctx.spec("mixer"),
            data=ctx.data(),
            train=ctx.train(ctx.scale.ablation_steps, seed=0, learning_rate=lr),
        ),
        config,
    )
    rows = run_ablation(
        AblateRequest(config=str(config), families=["mixer", "llama"], ablations=ablations, clip=clip, out=str(out))
    )
    return {(row["family"], row["ablation"]): row for row in rows}


def _judge(row: dict, whole: dict) -> str:
    """ "very poor", "fine", or why neither: the whole model diverged, a value is missing, or the ratio lies between the bands."""
    if whole["diverged_at"] is not None:
        return f"no reference (the whole model diverged at step {whole['diverged_at']})"
    if whole["eval_loss"] is None:
        return "no reference (the whole model has no held-out loss)"
    if row["diverged_at"] is not None:
        return VERY_POOR
    if row["eval_loss"] is None:
        return "no held-out loss"
    ratio = row["eval_loss"] / whole["eval_loss"]
    return VERY_POOR if ratio >= POOR else FINE if ratio <= SLIGHT else f"between the bands ({ratio:.3f}x)"


def _loss(row: dict) -> list[float | None]:
    return [row["eval_loss"]]  # None: the run diverged before it could be evaluated


def _describe(row: dict) -> str:
    if row["diverged_at"] is not None:
        return f"{row['family']} {row['ablation']} diverged at step {row['diverged_at']}"
    return (
        f"{row['family']} {row['ablation']}: held-out loss {row['eval_loss']:.4f}"
        if row["eval_loss"] is not None
        else "no eval loss"
    )


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "none (diverged)"


def _known(measured: dict) -> dict:
    """The measured values that exist (a diverged run has no held-out loss: its row says so)."""
    return {k: v for k, v in measured.items() if v[0] is not None}


def _band_check(
    claim: str, published: str, rows: dict, family: str, ablation: str, expected: str, variant: bool = False
):
    """The claim that `family` without `ablation` trains `expected` (VERY_POOR or FINE): the other band disagrees, neither is inconclusive."""
    whole, row = rows[(family, "none")], rows[(family, ablation)]
    measured = {f"{family} whole": _loss(whole), f"{family} {ablation}": _loss(row)}
    judged = _judge(row, whole)
    ok = {expected: True, (FINE if expected == VERY_POOR else VERY_POOR): False}.get(judged)
    reason = (
        f"{_describe(row)} vs whole {_fmt(whole['eval_loss'])}: {judged} (very poor = diverged or >= {POOR}x; "
        f"fine = no divergence and <= {SLIGHT}x)"
    )
    return holds(claim, published, _known(measured), ok, reason, variant)


def _poor_check(claim: str, published: str, rows: dict, family: str, ablation: str, variant: bool = False):
    return _band_check(claim, published, rows, family, ablation, VERY_POOR, variant)


def run(ctx: Context) -> Measured:
    rows = _sweep(
        ctx, "clip", ["none", "no_layer_norm", "no_residual", "no_feed_forward", "feed_forward_attention"], clip=True
    )
    free = _sweep(ctx, "no-clip", ["none", *UNSTABLE], clip=False)
    checks = [
        _poor_check(
            "A transformer without its MLPs trains very poorly",
            "the loss does not fall",
            rows,
            "llama",
            "no_feed_forward",
        ),
        _poor_check(
            "A transformer with its MLPs replaced by attention trains very poorly",
            "the loss does not fall",
            rows,
            "llama",
            "feed_forward_attention",
        ),
        _poor_check(
            "A transformer without layer norms trains very poorly",
            "unstable; gradients spike to infinity",
            rows,
            "llama",
            "no_layer_norm",
        ),
        _band_check(
            "A masked mixer without layer norms trains fine, slightly less efficiently",
            "16 layers, fineweb-edu: no loss spikes at a modest lr",
            rows,
            "mixer",
            "no_layer_norm",
            FINE,
        ),
        _poor_check(
            "Without residuals the transformer suffers severely",
            "both families suffer severely",
            rows,
            "llama",
            "no_residual",
        ),
        _poor_check(
            "Without residuals the mixer suffers severely",
            "both families suffer severely",
            rows,
            "mixer",
            "no_residual",
        ),
    ]
    checks += [
        _poor_check(
            f"No gradient clipping: {family} without {ablation.removeprefix('no_').replace('_', ' ')}s trains very poorly",
            "(the paper clipped at 1.0)",
            free,
            family,
            ablation,
            variant=True,
        )
        for family in ("llama", "mixer")
        for ablation in UNSTABLE
    ]
    table = [
        dict(
            clipping=clip,
            family=f,
            ablation=a,
            diverged_at=r["diverged_at"],
            final_loss=r["final_loss"],
            eval_loss=r["eval_loss"],
            steps=r["steps"],
        )
        for clip, sweep in (("1.0", rows), ("off", free))
        for (f, a), r in sweep.items()
    ]
    values = {f"{f} {a}": _loss(r) for (f, a), r in rows.items()}
    return Measured(
        checks=checks,
        table=table,
        budget=f"{ctx.scale.ablation_steps} steps per variant, batch {ctx.scale.batch_size} x L {ctx.scale.seq_len}, lr {ctx.scale.learning_rate('llama'):g}, one seed",
        headline=dict(metric="held-out loss after the ablation (none: diverged)", lower_is_better=True, values=values),
        artifacts=["F2/clip/ablation.md", "F2/no-clip/ablation.md"],
    )


FINDING = Finding(
    id="F2",
    title="Flexibility: training without parts",
    claim="In a transformer only attention is removable; without MLPs (or with attention instead), layer norms or residuals it "
    "trains very poorly. A masked mixer without layer norms trains fine; without residuals both suffer.",
    published="No numbers published: the loss does not fall (no MLP), training is unstable with gradient spikes (no norms, no "
    "residuals); a 16-layer mixer without layer norms trains slightly less efficiently, without spikes at a modest lr.",
    protocol="`masked-mixers ablate` on both families: whole, no_layer_norm, no_residual, no_feed_forward, and (Llama) "
    "feed_forward_attention; same tokens, steps and learning rate; gradient clipping 1.0 (the HF Trainer default the paper "
    "used); fp32 on CPU, the Trainer's bf16 autocast on a GPU (the paper: 16-bit mixed precision). Variant: the norm and residual ablations without clipping. One seed.",
    run=run,
    seeded=False,
)
