"""F2: flexibility, which parts each family can lose and still train (`masked-mixers ablate`).

The mixer and Llama (transformers' modules with switchable parts) train whole and without layer
norms, residuals or the feed-forward, and Llama with its feed-forward replaced by attention, all
on the same tokens for the same steps at one modest learning rate, with the Trainer's default
gradient clipping (1.0) as in the paper. Variant: the norm and residual ablations again without
clipping, since clipping can hide the spikes the paper describes.

"Trains very poorly" is made measurable as: diverged (NaN/inf, or a loss that rose 1.5x above its
running minimum and stayed there) or a held-out loss at least 5% above the whole model's.
"""

from __future__ import annotations

from ..config import RunConfig
from ..configfile import save_yaml
from ..files import make_dir
from .context import Context
from .finding import Finding, Measured
from .verdict import holds

POOR = 1.05  # held-out loss this many times the whole model's: "very poor training"
SLIGHT = 1.10  # "slightly less efficient": within this many times the whole model's held-out loss
UNSTABLE = ("no_layer_norm", "no_residual")


def _sweep(ctx: Context, folder: str, ablations: list[str], clip: bool) -> dict[tuple[str, str], dict]:
    """{(family, ablation): ablation row} of one sweep over both families."""
    from ..probes.ablate_runner import AblateRequest, run_ablation

    out = ctx.output_dir / "F2" / folder
    make_dir(out)
    config = out / "run.yaml"
    lr = ctx.scale.learning_rate("llama")  # one modest rate for every variant, as the paper's ablations
    save_yaml(RunConfig(model=ctx.spec("mixer"), data=ctx.data(), train=ctx.train(ctx.scale.ablation_steps, seed=0, learning_rate=lr)), config)
    rows = run_ablation(AblateRequest(config=str(config), families=["mixer", "llama"], ablations=ablations, clip=clip, out=str(out)))
    return {(row["family"], row["ablation"]): row for row in rows}


def _within(row: dict, whole: dict, factor: float) -> bool:
    """Trained without diverging to a held-out loss below `factor` x the whole model's."""
    losses = (row["eval_loss"], whole["eval_loss"])
    return row["diverged_at"] is None and None not in losses and losses[0] < factor * losses[1]


def _poor(row: dict, whole: dict) -> bool:
    return not _within(row, whole, POOR)


def _loss(row: dict) -> list[float | None]:
    return [row["eval_loss"]]  # None: the run diverged before it could be evaluated


def _describe(row: dict) -> str:
    if row["diverged_at"] is not None:
        return f"{row['family']} {row['ablation']} diverged at step {row['diverged_at']}"
    return f"{row['family']} {row['ablation']}: held-out loss {row['eval_loss']:.4f}" if row["eval_loss"] is not None else "no eval loss"


def _fmt(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "none (diverged)"


def _known(measured: dict) -> dict:
    """The measured values that exist (a diverged run has no held-out loss: its row says so)."""
    return {k: v for k, v in measured.items() if v[0] is not None}


def _poor_check(claim: str, published: str, rows: dict, family: str, ablation: str, variant: bool = False):
    whole, row = rows[(family, "none")], rows[(family, ablation)]
    measured = {f"{family} whole": _loss(whole), f"{family} {ablation}": _loss(row)}
    bad = _poor(row, whole)
    reason = f"{_describe(row)} vs whole {_fmt(whole['eval_loss'])}: {'very poor' if bad else 'trains'} (very poor = diverged or >= {POOR}x)"
    return holds(claim, published, _known(measured), bad, reason, variant)


def run(ctx: Context) -> Measured:
    rows = _sweep(ctx, "clip", ["none", "no_layer_norm", "no_residual", "no_feed_forward", "feed_forward_attention"], clip=True)
    free = _sweep(ctx, "no-clip", ["none", *UNSTABLE], clip=False)
    mixer_whole, mixer_no_norm = rows[("mixer", "none")], rows[("mixer", "no_layer_norm")]
    fine = _within(mixer_no_norm, mixer_whole, SLIGHT)
    checks = [
        _poor_check("A transformer without its MLPs trains very poorly", "the loss does not fall", rows, "llama", "no_feed_forward"),
        _poor_check("A transformer with its MLPs replaced by attention trains very poorly", "the loss does not fall", rows, "llama", "feed_forward_attention"),
        _poor_check("A transformer without layer norms trains very poorly", "unstable; gradients spike to infinity", rows, "llama", "no_layer_norm"),
        holds("A masked mixer without layer norms trains fine, slightly less efficiently", "16 layers, fineweb-edu: no loss spikes at a modest lr",
              _known({"mixer whole": _loss(mixer_whole), "mixer no_layer_norm": _loss(mixer_no_norm)}), fine,
              f"{_describe(mixer_no_norm)} vs whole {_fmt(mixer_whole['eval_loss'])} (fine = no divergence and <= {SLIGHT}x)"),
        _poor_check("Without residuals the transformer suffers severely", "both families suffer severely", rows, "llama", "no_residual"),
        _poor_check("Without residuals the mixer suffers severely", "both families suffer severely", rows, "mixer", "no_residual"),
    ]  # fmt: skip
    checks += [_poor_check(f"No gradient clipping: {family} without {ablation.removeprefix('no_').replace('_', ' ')}s trains very poorly",
                           "(the paper clipped at 1.0)", free, family, ablation, variant=True)
               for family in ("llama", "mixer") for ablation in UNSTABLE]  # fmt: skip
    table = [dict(clipping=clip, family=f, ablation=a, diverged_at=r["diverged_at"], final_loss=r["final_loss"], eval_loss=r["eval_loss"], steps=r["steps"])
             for clip, sweep in (("1.0", rows), ("off", free)) for (f, a), r in sweep.items()]  # fmt: skip
    values = {f"{f} {a}": _loss(r) for (f, a), r in rows.items()}
    return Measured(
        checks=checks, table=table,
        budget=f"{ctx.scale.ablation_steps} steps per variant, batch {ctx.scale.batch_size} x L {ctx.scale.seq_len}, lr {ctx.scale.learning_rate('llama'):g}, one seed",
        headline=dict(metric="held-out loss after the ablation (none: diverged)", lower_is_better=True, values=values),
        artifacts=["F2/clip/ablation.md", "F2/no-clip/ablation.md"],
    )  # fmt: skip


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
