"""How big `masked-mixers reproduce` runs: one dataclass of sizes and budgets per scale.

A scale changes sizes, budgets and counts, never a protocol: F1 always inverts with plain gradient
descent from N(0, 1) under an L1 sum, F2 always clips at 1.0 (the Trainer default the paper used;
no clipping is a named variant), F3 always uses the paper's transformer autoencoder (no decoder
positions), F5's InfoNCE always scores one query against 31 candidates at temperature 0.02. The
one exception is `tiny`, a test-only scale that shortens F1's 500 steps so the test suite can run
every section of the scorecard; its scorecard says so.

- cpu: d_model 128, 4 blocks, L 128 on TinyStories, 80-180 steps per model, 3 seeds (under 90 minutes on 2 cores).
- paper: the paper's sizes per finding (`PAPER_SIZES`: d_model 512-4096, L 512, 8-16 blocks), for a GPU; days.
- tiny: a few steps of d_model 16 models, 3 seeds; for tests only, its numbers mean nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.errors import UserError


@dataclass(frozen=True)
class Scale:
    """Sizes and budgets of one scale (every finding reads the fields it needs)."""

    name: str
    d_model: int
    layers: int
    seq_len: int
    heads: int
    batch_size: int
    seeds: int  # models trained per family where a finding compares families (F1, F3, F4, F6, F7)
    max_documents: int  # training documents read (the tokenizer trains on them too)
    max_eval_documents: int
    vocab_size: int
    clm_steps: int  # F4: the budget is what this many Llama steps cost (compute time; training FLOPs in the variant)
    autoencoder_steps: int  # F3
    ablation_steps: int  # F2
    bidirectional_steps: int  # F6
    linear_steps: int  # F7
    eval_batches: int  # held-out batches per evaluation
    represent_texts: int  # F1: sequences inverted per model
    represent_steps: int  # F1: gradient-descent steps (the paper's protocol: 500)
    retrieval_documents: int  # F5: documents that pairs are built from (train and test split by document)
    learning_rates: tuple[tuple[str, float], ...] = (("mixer", 5e-3), ("llama", 2e-3), ("gpt2", 2e-3))
    autoencoder_layers: int | None = None  # F3: encoder and decoder depth (None: layers)
    # finding ("F4", or "F3/memory-matched" for a further published setting) -> family or "*" -> ModelSpec
    # size fields over d_model/layers/heads/seq_len, read through Context.size / Context.spec;
    # compared but not hashed, so a Scale stays a cache key (f4_clm caches measured sizes by scale)
    sizes: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict, hash=False)

    def learning_rate(self, family: str) -> float:
        """The family's learning rate (the paper tunes one per kind of model): that of the group its
        declaration names (`Family.learning_rate_group`); a group this scale does not list is refused."""
        from ..models import FAMILIES

        group = FAMILIES[family].learning_rate_group
        rates = dict(self.learning_rates)
        if group not in rates:
            raise UserError(
                f"scale {self.name}: no learning rate for family {family!r} "
                f"(its group {group!r}; the scale has {', '.join(rates)})"
            )
        return rates[group]


PAPER_SIZES = {  # docs/reproduce.md's table maps each to the published setting; the rest: d 512, 8 blocks, L 512
    "F4": {  # TinyStories: mixer d 1024 vs Llama d 512, 16 layers, 4 heads; GPT-2 as Llama (F1, F5, F6 reuse these)
        "mixer": dict(hidden_size=1024),
        "llama": dict(num_hidden_layers=16),
        "gpt2": dict(num_hidden_layers=16),
    },
    "F2": {"*": dict(num_hidden_layers=16)},  # the no-norm mixer trained "fine" at 16 layers
    "F3": {"*": dict(encoder_layers=8, decoder_layers=8)},  # d 512, 8+8
    "F3/d1024-4+4": {"*": dict(hidden_size=1024, encoder_layers=4, decoder_layers=4)},
    "F3/memory-matched": {
        "mixer_autoencoder": dict(hidden_size=1024, encoder_layers=8, decoder_layers=8),
        "llama_autoencoder": dict(hidden_size=1024, encoder_layers=4, decoder_layers=4),
    },
    "F5": {"*": dict(hidden_size=512)},  # the 512-dim embedding models (F5 now embeds with F4's models)
    "F7": {"*": dict(hidden_size=4096)},  # the published d 4096 (the reference's d 16000 does not fit one GPU's budget)
}

SCALES: dict[str, Scale] = {
    "cpu": Scale(
        name="cpu",
        d_model=128,
        layers=4,
        seq_len=128,
        heads=4,
        batch_size=16,
        seeds=3,
        max_documents=20_000,
        max_eval_documents=500,
        vocab_size=4096,
        clm_steps=180,
        autoencoder_steps=120,
        ablation_steps=80,
        bidirectional_steps=120,
        linear_steps=150,
        eval_batches=10,
        represent_texts=4,
        represent_steps=500,
        retrieval_documents=10_000,
    ),
    "paper": Scale(
        name="paper",
        d_model=512,
        layers=8,
        seq_len=512,
        heads=4,
        batch_size=32,
        seeds=3,
        max_documents=2_000_000,
        max_eval_documents=2_000,
        vocab_size=4096,
        clm_steps=20_000,
        autoencoder_steps=20_000,
        ablation_steps=5_000,
        bidirectional_steps=20_000,
        linear_steps=20_000,
        eval_batches=50,
        represent_texts=64,
        represent_steps=500,
        retrieval_documents=200_000,
        learning_rates=(("mixer", 5e-4), ("llama", 2e-4), ("gpt2", 2e-4)),
        sizes=PAPER_SIZES,
    ),
    "tiny": Scale(
        name="tiny",
        d_model=16,
        layers=2,
        seq_len=16,
        heads=2,
        batch_size=4,
        seeds=3,
        max_documents=120,
        max_eval_documents=40,
        vocab_size=300,
        clm_steps=4,
        autoencoder_steps=3,
        ablation_steps=3,
        bidirectional_steps=3,
        linear_steps=3,
        eval_batches=2,
        represent_texts=2,
        represent_steps=5,
        retrieval_documents=120,
    ),
}
"""The scales `--scale` accepts; `tiny` is for tests."""


__all__ = ["SCALES", "Scale"]
