"""F5 by the paper's protocol: several queries per story split by story, the direct model's
plateau rule and its mixing inits, the one-query-vs-31 InfoNCE loss, the chance test, and run_f5
end to end (tiny)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from masked_mixers.retrieval import infonce
from masked_mixers.retrieval.direct import (
    Plateau,
    RetrievalMixer,
    RetrievalMixerConfig,
    evaluate_direct,
    fit_direct,
    train_direct,
)
from masked_mixers.retrieval.embedding import load_language_model
from masked_mixers.retrieval.f5 import beats_chance, direct_table, f5_settings, reference_settings, run_f5
from masked_mixers.retrieval.infonce import candidates_nce_loss, finetune_infonce
from masked_mixers.retrieval.pairs import build_pairs, passage_index, split_pairs
from masked_mixers.retrieval.settings import DIRECT_STOPS, RetrievalSettings
from masked_mixers.retrieval.significance import binomial_upper_tail, chance_test


def test_several_queries_per_story_share_one_passage_and_never_straddle_the_split(stories):
    pairs = build_pairs(stories, "sentence", seed=0, queries_per_document=3)
    by_doc: dict[int, list] = {}
    for p in pairs:
        by_doc.setdefault(p.doc_id, []).append(p)
    assert max(len(v) for v in by_doc.values()) == 3 and len(pairs) > 2 * len(by_doc)
    for group in by_doc.values():
        assert len({p.query for p in group}) == len(group)  # different sentences
        assert len({p.passage for p in group}) == 1  # one passage: the story without any of them
        assert all(" ".join(p.query.split()) not in " ".join(group[0].passage.split()) for p in group)
    splits = split_pairs(pairs, 0.3, seed=1)
    assert {p.doc_id for p in splits.train}.isdisjoint({p.doc_id for p in splits.test})
    assert len(splits.train) + len(splits.test) == len(pairs)
    passages, targets = passage_index(splits.test)
    assert len(passages) == len({p.doc_id for p in splits.test}) and [passages[t] for t in targets] == [
        p.passage for p in splits.test
    ]
    # one query per story: the very pairs and split as before this option existed
    single = build_pairs(stories, "sentence", seed=0)
    assert len({p.doc_id for p in single}) == len(single)


def test_plateau_rule_stops_training():
    rule = Plateau(patience=2, min_delta=0.01)
    assert [rule.step(x) for x in (1.0, 0.5, 0.495, 0.49, 0.3)] == [False, False, False, True, False]
    torch.manual_seed(0)
    queries, passages = torch.randn(64, 8), torch.randn(64, 8)
    config = RetrievalMixerConfig(input_size=8, hidden_size=8, num_candidates=4, num_hidden_layers=1)
    # a learning rate too small to move the model: the loss only wanders with the negatives drawn, so it stops early
    _, history = train_direct(
        queries, passages, config, epochs=50, learning_rate=1e-12, patience=3, evaluate=lambda m: {"test_ce": 0.0}
    )
    assert 4 <= len(history) < 50 and all("test_ce" in h for h in history)
    replay = Plateau(patience=3, min_delta=1e-3)
    assert [replay.step(h["loss"]) for h in history] == [False] * (len(history) - 1) + [
        True
    ]  # stopped at the first plateau
    _, capped = train_direct(queries, passages, config, epochs=3, learning_rate=1e-12, patience=None)
    assert len(capped) == 3


@pytest.mark.parametrize("init", ["exchangeable", "uniform"])
def test_exchangeable_mixing_init_treats_every_candidate_slot_alike(init):
    """Permuting the candidates permutes the scores exactly at the exchangeable init; the uniform
    (author's) init gives each slot its own mix, so the same check fails there."""
    torch.manual_seed(0)
    model = RetrievalMixer(
        RetrievalMixerConfig(input_size=12, hidden_size=16, num_candidates=6, num_hidden_layers=2, mixing_init=init)
    )
    inputs = torch.randn(3, 7, 12)  # (batch, query + 6 candidates, d)
    order = torch.tensor([0, 4, 1, 6, 2, 5, 3])  # the query stays first, the candidates move
    with torch.no_grad():
        scores, moved = model(inputs).logits, model(inputs[:, order]).logits
    equivariant = torch.allclose(moved, scores[:, order[1:] - 1], atol=1e-5)
    assert equivariant == (init == "exchangeable")


def _planted_pairs(n: int, d: int, noise: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rotation = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    queries = torch.randn(n, d, generator=g)
    return queries, queries @ rotation + noise * torch.randn(n, d, generator=g)


def test_exchangeable_init_learns_where_the_uniform_init_sits_at_chance(tmp_path):
    """Noisy planted pairs (a rotation of the query plus noise as loud as the signal): in 10 epochs the
    uniform init barely leaves ln 16, the exchangeable one learns and beats chance on held-out pairs."""
    queries, passages = _planted_pairs(640, 16, noise=1.0)
    final = {}
    for init in ("uniform", "exchangeable"):
        config = RetrievalMixerConfig(
            input_size=16, hidden_size=32, num_candidates=16, num_hidden_layers=2, mixing_init=init
        )
        model, history = train_direct(
            queries[:512], passages[:512], config, epochs=10, batch_size=32, learning_rate=3e-3
        )
        final[init] = history[-1]["loss"]
    assert final["exchangeable"] < final["uniform"] - 0.5 and final["uniform"] > math.log(16) - 0.2, final
    held_out = evaluate_direct(model, queries[512:], passages[512:])
    assert held_out["beats_chance"] and held_out["top1"] > 5 / 16, held_out
    model.save_pretrained(tmp_path / "retriever")  # the init is part of the config and survives the round trip
    loaded = RetrievalMixer.from_pretrained(tmp_path / "retriever")
    assert (
        loaded.config.mixing_init == "exchangeable"
        and evaluate_direct(loaded, queries[512:], passages[512:]) == held_out
    )


def test_unknown_mixing_init_is_refused():
    with pytest.raises(
        Exception, match="mixing_init must be one of exchangeable, uniform"
    ):  # huggingface_hub's strict-dataclass error
        RetrievalMixerConfig(mixing_init="zeros")


def test_infonce_loss_of_one_query_against_its_candidates_by_hand():
    query = torch.tensor([1.0, 0.0], dtype=torch.float64)
    candidates = torch.tensor([[0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    cos = [0.0, 1 / math.sqrt(2), -1.0]
    f = [math.exp(c / 0.02) for c in cos]
    expected = -math.log(f[1] / sum(f))  # positive at slot 1
    assert candidates_nce_loss(query, candidates, 1, 0.02).item() == pytest.approx(expected, rel=1e-9)


def test_paper_infonce_embeds_one_query_and_31_candidates_per_step(model_dirs, stories, monkeypatch):
    model, tokenizer = load_language_model(model_dirs["mixer"])
    pairs = build_pairs(stories[:60], "sentence", queries_per_document=2)
    seen, real = [], infonce.embed_batch
    monkeypatch.setattr(
        infonce, "embed_batch", lambda m, ids, mask, pos: seen.append(len(ids)) or real(m, ids, mask, pos)
    )
    history = finetune_infonce(model, tokenizer, pairs, steps=3, progress=False)
    assert seen == [32, 32, 32] and len(history) == 3 and all(math.isfinite(h["loss"]) for h in history)


def test_chance_test_on_hand_made_counts():
    assert binomial_upper_tail(2, 3, 0.5) == pytest.approx(0.5)  # (3 + 1) / 8
    assert binomial_upper_tail(0, 10, 0.1) == pytest.approx(1.0)
    assert binomial_upper_tail(3, 3, 0.1) == pytest.approx(0.001)
    assert chance_test(3, 3, 10)["beats_chance"]  # p = 0.001
    weak = chance_test(2, 3, 10)  # p = 3 * 0.01 * 0.9 + 0.001 = 0.028
    assert weak["p_value"] == pytest.approx(0.028) and not weak["beats_chance"]
    assert not chance_test(40, 1000, 32)["beats_chance"]  # 4.0% of 32 candidates: chance is 3.1%, p ~ 0.07
    assert chance_test(60, 1000, 32)["beats_chance"]


def test_run_f5_reports_both_families(model_dirs, stories, tmp_path):
    settings = f5_settings(
        queries_per_document=2,
        test_fraction=0.5,
        direct_candidates=[8],
        direct_epochs=2,
        infonce_steps=2,
        infonce_candidates=4,
        batch_size=64,
    )
    result = run_f5(
        model_dirs["mixer"], model_dirs["llama"], settings, stories[:80], progress=False, cache_dir=tmp_path
    )
    assert set(result["families"]) == {"mixer", "llama"} and result["pairs"]["test_pairs"] > 0
    for family in result["families"].values():
        (row,) = family["direct"]
        assert row["candidates"] == 8 and row["n_context"] == 9 and row["chance_ce"] == pytest.approx(math.log(8))
        assert row["epochs"] == 2 and row["stop"] == "fixed"  # the reference: a fixed epoch count
        assert {"train_ce", "ce", "ce_se", "train_top1", "top1", "p_value", "beats_chance", "history"} <= set(row)
        assert family["infonce"]["rows"] and family["infonce"]["candidates_per_step"] == 4
    assert set(beats_chance(result)) == {"mixer", "llama"} and "| mixer | 9 | 8 |" in direct_table(result)
    assert (tmp_path / "mixer-embeddings.safetensors").is_file()


def test_cached_embeddings_are_reused_only_for_the_same_pairs_and_model(model_dirs, stories, tmp_path, monkeypatch):
    import masked_mixers.retrieval.f5 as f5

    calls = []
    real = f5.embed_splits
    monkeypatch.setattr(f5, "embed_splits", lambda *a, **k: calls.append(1) or real(*a, **k))
    settings = f5_settings(direct_candidates=[4], direct_epochs=1, methods=["direct"], batch_size=64)
    cache = tmp_path / "mixer-embeddings.safetensors"
    first, other = (f5.f5_pairs(stories[:k], settings) for k in (40, 60))
    runs = [
        f5.run_family(model_dirs["mixer"], pairs, settings, progress=False, cache=cache)
        for pairs in (first, first, other, other)
    ]
    assert len(calls) == 2  # the second run reads the file; other pairs are embedded again, then read
    assert runs[0]["direct"][0]["ce"] == runs[1]["direct"][0]["ce"]
    import os

    weights = next(Path(model_dirs["mixer"]).glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # as if retrained
    f5.run_family(model_dirs["mixer"], other, settings, progress=False, cache=cache)
    assert len(calls) == 3


def test_f5_defaults_are_the_reference_settings():
    """findings.md F5 "Reference settings": n_context 32 (= the query + 31 candidates) and 128, width = the
    embedding width, 8 blocks, AdamW lr 1e-4, warmup 500, batch 128, a fixed 200 epochs, the uniform init."""
    for settings in (f5_settings(), reference_settings()):
        assert settings.direct_candidates == [31, 127]
        assert settings.direct_hidden_size is None  # fit_direct: None is the embedding width
        assert settings.direct_layers == 8
        assert settings.direct_learning_rate == 1e-4
        assert settings.direct_warmup_steps == 500
        assert settings.direct_batch_size == 128
        assert settings.direct_epochs == 200
        assert settings.direct_stop == "fixed"
        assert settings.direct_mixing_init == "uniform"
        assert settings.infonce_candidates == 31 and settings.temperature == 0.02
    plain = RetrievalSettings()  # the benchmark's defaults are the reference's too
    assert (plain.direct_candidates, plain.direct_layers, plain.direct_batch_size) == ([31], 8, 128)
    assert (plain.direct_learning_rate, plain.direct_warmup_steps, plain.direct_epochs) == (1e-4, 500, 200)
    assert plain.direct_stop == "fixed" and plain.direct_mixing_init == "uniform"


def test_chance_is_ln_of_n_context_minus_one():
    """The label is one of the n_context - 1 candidates (the query takes a slot but is never the answer)."""
    torch.manual_seed(0)
    n_context = 32
    config = RetrievalMixerConfig(input_size=8, hidden_size=8, num_candidates=n_context - 1, num_hidden_layers=1)
    row = evaluate_direct(RetrievalMixer(config).eval(), torch.randn(40, 8), torch.randn(40, 8))
    assert row["n_context"] == n_context and row["candidates"] == n_context - 1
    assert row["chance_ce"] == pytest.approx(math.log(31)) == pytest.approx(3.434, abs=1e-3)
    assert row["chance_top1"] == pytest.approx(1 / 31)
    inputs = RetrievalMixer(config)(torch.randn(2, n_context, 8)).logits
    assert inputs.shape == (2, n_context - 1)  # one score per candidate, none for the query


def _fit(stop: str, epochs: int) -> list[dict]:
    torch.manual_seed(0)
    embeddings = (torch.randn(48, 8), torch.randn(48, 8), torch.arange(48))
    settings = RetrievalSettings(
        direct_candidates=[4],
        direct_epochs=epochs,
        direct_stop=stop,
        direct_patience=2,
        direct_layers=1,
        direct_batch_size=16,
        direct_learning_rate=1e-12,  # the model cannot move: the train loss is flat up to the negatives drawn
        direct_warmup_steps=2,
    )
    return fit_direct(embeddings, embeddings, settings)


def test_a_fixed_epoch_count_trains_exactly_that_many_epochs_and_plateau_is_a_named_variant():
    assert DIRECT_STOPS == ("fixed", "plateau") and RetrievalSettings().direct_stop == "fixed"
    (fixed,) = _fit("fixed", 12)
    assert fixed["epochs"] == len(fixed["history"]) == 12 and fixed["stop"] == "fixed"
    (plateau,) = _fit("plateau", 12)  # flat loss: the plateau rule stops it early
    assert plateau["stop"] == "plateau" and 3 <= plateau["epochs"] < 12


def test_direct_learning_rate_warms_up_then_decays_to_zero():
    queries, passages = torch.randn(32, 8), torch.randn(32, 8)
    config = RetrievalMixerConfig(input_size=8, hidden_size=8, num_candidates=4, num_hidden_layers=1)
    rates = []
    real = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.AdamW, "step", spy)
        train_direct(queries, passages, config, epochs=3, batch_size=8, learning_rate=1e-3, warmup_steps=4)
    assert len(rates) == 12  # 3 epochs x 4 steps
    assert rates[:5] == pytest.approx([0.0, 2.5e-4, 5e-4, 7.5e-4, 1e-3])  # linear warmup over 4 steps
    assert rates[-1] == pytest.approx(1e-3 / 8) and rates[4:] == sorted(rates[4:], reverse=True)  # linear decay


def test_cpu_scale_states_every_deviation_from_the_reference():
    from masked_mixers.reproduce.f5_retrieval import SETTINGS, deviations

    cpu = deviations(f5_settings(**SETTINGS["cpu"]), "cpu")
    for words in ("epochs (fixed, no early stop): 4 (reference: 200)", "blocks: 4 (reference: 8)", "warmup steps: 20"):
        assert any(words in d for d in cpu), words
    assert any("fp32" in d for d in cpu) and any("exchangeable" in d for d in cpu)
    paper = deviations(f5_settings(**SETTINGS["paper"]), "paper")
    assert not any("(reference:" in d for d in paper)  # the paper scale runs the reference settings
