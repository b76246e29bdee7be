"""F5: retrieval with the embeddings of causal-LM-trained mixers and transformers (retrieval/f5.py).

For each seed of the scale, F4's mixer and Llama of that seed embed (query sentence, rest of the
story) pairs from every story available, split by story. F4's models are used because every
finding of a scale shares them, a rule fixed before any retrieval result was seen; the result
does depend on how long they trained (docs/retrieval.md, the budget search).

The paper's direct-embedding retrieval model (a non-causal mixer over the query and n candidate
embeddings) trains on the frozen embeddings until its train loss stops falling and is scored by
test cross-entropy and top-1 against n, with a binomial test against chance. It runs twice on the
same embeddings: with the author's (uniform) mixing init, the protocol, and with the exchangeable
init, a named variant that leaves the plateau the uniform init sits on at CPU budgets
(retrieval/direct.py). Then each whole model is fine-tuned with InfoNCE as F5 runs it (one query
vs 31 candidates per step, temperature 0.02, the model's own padding side). Without summaries
(none exist offline) the queries are sentences of the story, not LLM-written summaries: a named
difference from the paper's data, not from its protocol.
"""

from __future__ import annotations

import dataclasses
import math

from .context import Context
from .f4_clm import trained
from .finding import Finding, Measured
from .verdict import FAR, INCONCLUSIVE, Check, better

# per scale: the reference settings (retrieval/f5.py F5_DEFAULTS) with only sizes and budgets scaled; every
# deviation is in DEVIATIONS and the scorecard. n_context = direct_candidates + 1 (the query counts).
SETTINGS = {
    # 4 blocks (the reference's 8 scaled as the cpu language models are: 4 of the paper's 8), width = the
    # embedding width (128), batch 128, lr 1e-4, a fixed 4 epochs (the reference: 200) and warmup 20 steps
    # (about a third of the first epoch's 63 steps, as the reference's 500 are of its first epoch's 1,563).
    # Estimate: one epoch of 8,000 pairs ~10-15 s on the 2 cores (33 s measured on one thread with the machine
    # shared), the embeddings and InfoNCE ~85 s per seed (the 2-seed run of 390 s), so 3 seeds ~ 8-11 min; the
    # exchangeable-init variant would add 2 x 4 epochs per seed and runs at paper scale only.
    "cpu": dict(
        queries_per_document=1,
        direct_candidates=[31],
        direct_epochs=4,
        direct_layers=4,
        direct_warmup_steps=20,
        infonce_steps=100,
        batch_size=64,
    ),
    "paper": dict(queries_per_document=1, direct_candidates=[31, 127], infonce_steps=2000),
    "tiny": dict(
        queries_per_document=2,
        direct_candidates=[7],
        direct_epochs=2,
        direct_hidden_size=8,
        direct_layers=1,
        direct_batch_size=8,
        direct_warmup_steps=2,
        infonce_steps=2,
        infonce_candidates=4,
        batch_size=8,
        candidates=[8],
    ),
}
# scales that also run the direct model with the exchangeable mixing init (a named variant) on the same embeddings
VARIANT_SCALES = ("paper", "tiny")
VARIANT_INIT = "exchangeable"


def _documents(ctx: Context) -> list[str]:
    """Every story the run can read, training corpus then held-out corpus, lowercased as the models saw them."""
    from ..data import load_corpus

    sources = [(ctx.data_source, "train"), (ctx.eval_source or ctx.data_source, "validation")]
    texts: list[str] = []
    for source, split in sources:
        left = ctx.scale.retrieval_documents - len(texts)
        if left > 0:
            corpus = load_corpus(source, split=split, lowercase=True, max_documents=left)
            texts += [t for t in corpus["text"] if t.strip()]
    return texts


SIDES = ("mixer", "llama")
PUBLISHED = {  # by candidates (n_context - 1)
    31: "TinyStories, n_context 32 (31 candidates), test CE: mixer 0.10 vs transformer ~3.43 (no learning; chance "
    "ln 31 = 3.434) at 512-dim; 0.29 vs 0.40 at 1024-dim",
    127: "n_context 128, test CE: mixer 0.76 vs transformer 2.27",
}


def _described(seeds: list[dict[str, dict]]) -> str:
    """The language models of each seed: where they were trained, their steps and eval loss."""
    return "; ".join(
        f"F4/flops-seed-{i} ("
        + ", ".join(
            f"{side} {rows[side]['steps']} steps, eval loss {rows[side]['eval_loss'] or float('nan'):.3f}"
            for side in SIDES
        )
        + ")"
        for i, rows in enumerate(seeds)
    )


def _row(family: dict, n: int) -> dict | None:
    return next((r for r in family["direct"] if r["candidates"] == n), None)


def _direct_checks(results: list[dict], n: int, variant: bool = False) -> list[Check]:
    """The paper's direct-model comparison (test CE at n, one value per seed) and the same on test
    top-1, inconclusive when no family beats chance on any seed."""
    rows = {side: [_row(r["families"][side], n) for r in results] for side in SIDES}
    init = f" ({VARIANT_INIT} mixing init)" if variant else ""
    claim = (
        f"Mixer embeddings support far better retrieval than transformer embeddings (direct model{init}, test CE, "
        f"n_context {n + 1} = {n} candidates; far: at least {FAR:.0%} below the transformer's)"
    )
    if any(row is None for side in SIDES for row in rows[side]):
        return [Check(claim, PUBLISHED.get(n, "-"), {}, INCONCLUSIVE, f"fewer than {n} test passages", variant)]
    checks = [
        better(
            claim,
            PUBLISHED.get(n, "-"),
            *(x for side in SIDES for x in (side, [r["ce"] for r in rows[side]])),
            variant=variant,
            effect=FAR,
        ),
        better(
            f"The same, on test top-1 of {n} (direct model{init}; far: at least {FAR:.0%} above the transformer's)",
            "-",
            *(x for side in SIDES for x in (side, [r["top1"] for r in rows[side]])),
            lower_is_better=False,
            variant=variant,
            effect=FAR,
        ),
    ]
    return [_gated(check, rows, n) for check in checks]


def _top1(rows: list[dict], n: int) -> float | None:
    return next((r["top1"] for r in rows if r["candidates"] == n), None)


def _gated(check: Check, rows: dict[str, list[dict]], n: int) -> Check:
    """Inconclusive when neither side's top-1 of n candidates is above chance 1/n (binomial test): a gap between two
    guesses is noise."""
    if not any(r["beats_chance"] for side in rows.values() for r in side if r["candidates"] == n):
        check.verdict, check.reason = (
            INCONCLUSIVE,
            f"neither family beats chance (top-1 1/{n}) on test pairs: {check.reason}",
        )
    return check


def _ranked(results: list[dict], method: str, n: int, claim: str, published: str, variant: bool = False) -> Check:
    """Mixer vs Llama on top-1 of n by `method` (cosine, or InfoNCE's rows), per seed, gated by chance."""
    rows = {side: [row for r in results for row in _method_rows(r["families"][side], method)] for side in SIDES}
    values = {side: [_top1(_method_rows(r["families"][side], method), n) for r in results] for side in SIDES}
    check = better(
        claim, published, "mixer", values["mixer"], "llama", values["llama"], lower_is_better=False, variant=variant
    )
    return _gated(check, rows, n)


def _method_rows(family: dict, method: str) -> list[dict]:
    return family["infonce"]["rows"] if method == "infonce" else family[method]


def _run_seed(ctx: Context, seed: int, settings, documents: list[str]) -> tuple[dict, dict, dict | None]:
    """F4's models of `seed`, their direct model (and, at VARIANT_SCALES, again with the exchangeable init on the
    same cached embeddings), cosine and InfoNCE; pairs, candidates and retrievers drawn with the same seed."""
    from ..core.devices import resolve_device
    from ..retrieval.f5 import run_f5

    models = trained(ctx, seed)
    settings = dataclasses.replace(settings, seed=seed)
    dirs = models["mixer"]["output_dir"], models["llama"]["output_dir"]
    common = dict(
        documents=documents,
        device=str(resolve_device(ctx.device)),
        progress=ctx.progress,
        cache_dir=ctx.output_dir / "F5" / f"seed-{seed}" / "embeddings",
    )
    result = run_f5(*dirs, settings, **common)
    variant = None
    if ctx.scale.name in VARIANT_SCALES:
        variant = run_f5(
            *dirs, dataclasses.replace(settings, direct_mixing_init=VARIANT_INIT, methods=["direct"]), **common
        )
    return models, result, variant


def _direct_rows(seed: int, init: str, run: dict) -> list[dict]:
    return [
        dict(
            seed=seed,
            family=side,
            n_context=r["candidates"] + 1,
            candidates=r["candidates"],
            mixing_init=init,
            epochs=r["epochs"],
            train_ce=r["train_ce"],
            test_ce=r["ce"],
            min_test_ce=r["min_test_ce"],
            chance_ce=r["chance_ce"],
            train_top1=r["train_top1"],
            test_top1=r["top1"],
            chance_top1=r["chance_top1"],
            p_value=r["p_value"],
            beats_chance=r["beats_chance"],
        )
        for side in SIDES
        for r in run["families"][side]["direct"]
    ]


def _table(results: list[dict], variants: list[dict | None], settings, infonce: dict[str, list], n: int) -> list[dict]:
    table = [
        row
        for seed, (result, variant) in enumerate(zip(results, variants))
        for init, run in ((settings.direct_mixing_init, result), (VARIANT_INIT, variant))
        if run is not None
        for row in _direct_rows(seed, init, run)
    ]
    return table + [
        dict(seed=seed, family=side, candidates=n, method="InfoNCE, then cosine", test_top1=infonce[side][seed])
        for seed in range(len(results))
        for side in SIDES
    ]


def deviations(settings, scale: str) -> list[str]:
    """Every way this scale's F5 run differs from the reference settings (findings.md F5), in words."""
    from ..retrieval.f5 import reference_settings

    reference, out = reference_settings(), []
    for key, label in DEVIATION_FIELDS.items():
        ours, theirs = getattr(settings, key), getattr(reference, key)
        if ours != theirs:
            out.append(f"{label}: {ours} (reference: {theirs})")
    if settings.direct_hidden_size is not None:
        out.append(f"retrieval model width {settings.direct_hidden_size} (reference: the embedding width)")
    out += [
        "the direct model trains in fp32; the reference in fp16",
        "queries are sentences of the story (no summaries exist offline); the reference used LLM-written "
        "one-sentence summaries of 200k stories",
        "the retrieval model projects its input (LayerNorm + Linear d -> d) before the blocks; the reference "
        "feeds the embeddings to its blocks directly",
    ]
    if scale not in VARIANT_SCALES:
        out.append(f"the {VARIANT_INIT}-init variant is not run at this scale (it would double F5's time)")
    return out


DEVIATION_FIELDS = {
    "direct_candidates": "candidates (n_context - 1)",
    "direct_epochs": "epochs (fixed, no early stop)",
    "direct_layers": "retrieval model blocks",
    "direct_warmup_steps": "warmup steps",
    "direct_batch_size": "batch",
    "direct_learning_rate": "learning rate",
    "direct_stop": "stop rule",
    "direct_mixing_init": "mixing init",
}


def run(ctx: Context) -> Measured:
    from ..retrieval.f5 import f5_settings

    settings = f5_settings(**SETTINGS[ctx.scale.name])
    documents = _documents(ctx)
    runs = [_run_seed(ctx, seed, settings, documents) for seed in range(ctx.scale.seeds)]
    models, results, variants = (list(x) for x in zip(*runs))
    counts = sorted(settings.direct_candidates)
    n = counts[0]
    checks = [
        *[c for m in counts for c in _direct_checks(results, m)],
        *[c for m in counts for c in (_direct_checks(variants, m, variant=True) if variants[0] else [])],
        _ranked(
            results,
            "infonce",
            n,
            f"After InfoNCE fine-tuning, the mixer retrieves more accurately (top-1 of {n} candidates)",
            "FineMath, top-1 of 32: mixer d 512 82.1% vs transformer d 512 70.4%",
        ),
        _ranked(
            results,
            "cosine",
            n,
            f"Raw embeddings by cosine similarity (the paper: 'very inaccurate'; top-1 of {n} candidates)",
            "-",
            variant=True,
        ),
    ]
    infonce = {side: [_top1(r["families"][side]["infonce"]["rows"], n) for r in results] for side in SIDES}
    pairs = results[0]["pairs"]
    width = settings.direct_hidden_size or "d_model"
    inits = settings.direct_mixing_init + (f" and (variant) {VARIANT_INIT}" if variants[0] else "")
    return Measured(
        checks=checks,
        table=_table(results, variants, settings, infonce, n),
        budget=f"{pairs['train_pairs']} train / {pairs['test_pairs']} test pairs from {pairs['documents']} stories "
        f"({settings.queries_per_document} per story; counts of seed 0: the split, candidates and retriever are drawn "
        f"per seed); direct model: {settings.direct_layers} blocks at width {width}, "
        f"n_context {', '.join(str(m + 1) for m in counts)}, batch {settings.direct_batch_size}, AdamW lr "
        f"{settings.direct_learning_rate:g}, warmup {settings.direct_warmup_steps} steps, a fixed "
        f"{settings.direct_epochs} epochs ({settings.direct_stop}), mixing init {inits}; InfoNCE "
        f"{settings.infonce_steps} steps; language models: {_described(models)}",
        headline=dict(
            metric=f"direct model test CE, n_context {n + 1} (chance ln {n} = {math.log(n):.3f})",
            lower_is_better=True,
            values={side: [(_row(r["families"][side], n) or {}).get("ce") for r in results] for side in SIDES},
        ),
        notes=[
            *(f"deviation from the reference: {d}" for d in deviations(settings, ctx.scale.name)),
            "the result depends on how long the language models trained: docs/retrieval.md has the budget search (F4's "
            "models are used because every finding of a scale shares them)",
        ],
        artifacts=[f"F4/flops-seed-{seed}/report.md" for seed in range(len(results))],
    )


FINDING = Finding(
    id="F5",
    title="Retrieval",
    claim="Causal-LM-trained masked mixers give far better embeddings for retrieval than transformers: the "
    "direct-embedding "
    "retrieval model learns on mixer embeddings, and InfoNCE fine-tuned mixers retrieve more accurately.",
    published="TinyStories, n_context 32 (31 candidates), train/test CE: 512-dim mixer 0.01/0.10 vs transformer ~3.43 "
    "(no learning, chance ln 31 = 3.434); 1024-dim, 200k pairs: 0.05/0.29 vs 0.01/0.40; n_context 128: 0.01/0.76 vs "
    "0.61/2.27. InfoNCE (FineMath, top-1 of 32): mixer d 512 82.1%, transformer d 512 70.4%.",
    protocol="Embedding = last hidden layer at the second-to-last token. Direct model (the reference settings, "
    "blbadger/maskedmixers mixer_lm/train_retrieval.py): a non-causal mixer over n_context = the query + n candidate "
    "embeddings (positive at a random slot), 8 blocks at the embedding width, head d -> 1, softmax over the n "
    "candidates "
    "(chance ln n = ln(n_context - 1)); AdamW lr 1e-4, warmup 500 steps then linear decay, batch 128, a fixed 200 "
    "epochs "
    "(no early stop; stopping at a plateau is a named variant), PyTorch's default (uniform) mixing init (exchangeable: "
    "a named variant); test CE and top-1 vs n with a binomial test against chance 1/n. Scaled sizes and every "
    "deviation "
    "are in the notes. InfoNCE: the whole model, one query vs 31 candidates per step, f = exp(cos / 0.02), the model's "
    "padding side.",
    run=run,
)
