"""Retrieval: pairs, embeddings, ranking, BM25, the direct retrieval mixer and InfoNCE."""

from __future__ import annotations

import json
import random
import re

import pytest
import torch
from conftest import bpe_tokenizer

from masked_mixers.cli import main
from masked_mixers.retrieval import (
    Pair,
    RetrievalMixer,
    RetrievalMixerConfig,
    bm25_scores,
    build_pairs,
    cosine_scores,
    embed_texts,
    evaluate_direct,
    finetune_infonce,
    load_embeddings,
    load_language_model,
    metrics_vs_candidates,
    read_pairs,
    retrieval_benchmark,
    sample_negatives,
    save_embeddings,
    split_pairs,
    train_direct,
)
from masked_mixers.retrieval.direct import candidate_batch
from masked_mixers.retrieval.embedding import POSITIONS
from masked_mixers.retrieval.pairs import (
    content_words,
    parse_tinystories_instruct,
    save_splits,
    split_sentences,
)
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model
from masked_mixers.runs.layout import SCORE, input_side

# --- pairs ----------------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_sentence_query_is_not_in_its_passage(stories):
    pairs = build_pairs(stories, "sentence", seed=1)
    assert len(pairs) > 300
    for pair in pairs:
        assert " ".join(pair.query.lower().split()) not in " ".join(pair.passage.lower().split())
        assert pair.query in stories[pair.doc_id]  # a real sentence of its own document


def test_keyword_query_words_are_not_in_their_passage(stories):
    pairs = build_pairs(stories, "keywords", seed=1, num_keywords=3)
    assert len(pairs) > 300
    for pair in pairs:
        keywords = pair.query.split()
        assert len(keywords) == 3 and set(keywords) <= set(content_words(stories[pair.doc_id]))
        assert not set(keywords) & _words(pair.passage)


def test_pairs_and_splits_are_deterministic_and_disjoint(stories):
    pairs = build_pairs(stories, "sentence", seed=3)
    assert pairs == build_pairs(stories, "sentence", seed=3)
    assert pairs != build_pairs(stories, "sentence", seed=4)
    a, b = split_pairs(pairs, 0.25, seed=0), split_pairs(pairs, 0.25, seed=0)
    assert a == b and len(a.test) == round(0.25 * len(pairs))
    assert not {p.doc_id for p in a.train} & {p.doc_id for p in a.test}
    assert sorted(a.train + a.test, key=lambda p: p.doc_id) == pairs


def test_split_sentences_keeps_quotes_with_their_sentence():
    assert split_sentences('he said, "hi." then she ran! why? ok') == ['he said, "hi."', "then she ran!", "why?", "ok"]


def test_tinystories_instruct_parser():
    rows = [
        "Features: Dialogue",
        "Summary: a cat finds a hat.",
        "Story: ",
        "the cat saw a hat.",
        "",
        "it was red.",
        "<|endoftext|>",
        "Words: x",
        "Story: no summary here",
        "<|endoftext|>",
        "Summary: a dog runs.",
        "Story: the dog ran.",
    ]
    assert parse_tinystories_instruct(rows) == [
        ("a cat finds a hat.", "the cat saw a hat.\n\nit was red."),
        ("a dog runs.", "the dog ran."),
    ]


def test_pairs_command_writes_splits(tmp_path, stories):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": s}) + "\n" for s in stories[:100]))
    assert (
        main(
            ["pairs", str(corpus), "--output-dir", str(tmp_path / "p"), "--kind", "sentence", "--test-fraction", "0.3"]
        )
        == 0
    )
    train, test = read_pairs(tmp_path / "p" / "train.jsonl"), read_pairs(tmp_path / "p" / "test.jsonl")
    assert len(test) == round(0.3 * (len(train) + len(test))) and len(train) > 50
    assert (
        main(["pairs", str(tmp_path / "p" / "test.jsonl"), "--kind", "file", "--output-dir", str(tmp_path / "q")]) == 0
    )


def test_bad_pair_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a"}\n')
    assert main(["pairs", str(bad), "--kind", "file", "--output-dir", str(tmp_path / "o")]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


# --- negatives and ranking ------------------------------------------------------------------


def test_positive_is_never_drawn_as_a_negative():
    generator = torch.Generator().manual_seed(0)
    negatives = sample_negatives(50, 49, generator)  # every other item: the hardest case
    rows = torch.arange(50)[:, None]
    assert not (negatives == rows).any()
    assert all(len(set(r.tolist())) == 49 for r in negatives)
    queries, passages = torch.randn(50, 4), torch.randn(50, 4)
    batch = torch.arange(50)
    inputs, labels = candidate_batch(queries, passages, batch, sample_negatives(50, 15, generator), generator)
    assert inputs.shape == (50, 17, 4)
    assert torch.equal(inputs[:, 0], queries)
    for k in range(50):  # the positive sits at its label slot and nowhere else
        matches = (inputs[k, 1:] == passages[k]).all(dim=1)
        assert matches.nonzero().flatten().tolist() == [labels[k].item()]


def test_ranking_metrics_perfect_and_chance():
    perfect = metrics_vs_candidates(torch.eye(64), [32, 64])
    assert all(r["top1"] == 1.0 and r["mrr"] == 1.0 for r in perfect)
    flat = metrics_vs_candidates(torch.zeros(2000, 2000), [32])[0]  # all ties: chance, not the top
    assert abs(flat["top1"] - 1 / 32) < 0.015 and abs(flat["top10"] - 10 / 32) < 0.04


def test_bm25_sanity():
    passages = ["the cat sat on the mat", "the dog ran in the park", "a bird sang in the tree", "the the the the cat"]
    scores = bm25_scores(["dog park", "bird", "cat mat", "zebra"], passages)
    assert scores.shape == (4, 4)
    assert scores[0].argmax() == 1 and scores[1].argmax() == 2 and scores[2].argmax() == 0
    assert torch.all(scores[3] == 0)  # unknown word: no evidence
    assert scores[2, 0] > scores[2, 3]  # "mat" (rare) outweighs a longer passage's "cat"
    rare, common = bm25_scores(["bird", "the"], passages)[:, [2, 2]].T[0]
    assert rare > common  # idf: a term in one passage weighs more than one in three


# --- embeddings -----------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["mixer", "llama"])
@pytest.mark.parametrize("position", ["second-to-last", "last-token", "last"])
def test_embeddings_do_not_depend_on_batching(model_dirs, stories, family, position):
    model, tokenizer = load_language_model(model_dirs[family])
    texts = ["a cat.", stories[0], "the end", stories[1][:60], "hi", stories[2]]  # mixed lengths, some truncated
    together = embed_texts(model, tokenizer, texts, position, batch_size=6, progress=False)
    one_by_one = embed_texts(model, tokenizer, texts, position, batch_size=1, progress=False)
    reversed_ = embed_texts(model, tokenizer, texts[::-1], position, batch_size=4, progress=False).flip(0)
    assert together.shape == (6, 32)
    torch.testing.assert_close(together, one_by_one, rtol=0, atol=1e-5)
    torch.testing.assert_close(together, reversed_, rtol=0, atol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_mixer_embeddings_pad_on_the_side_it_was_trained_with(tmp_path, stories, side):
    """A mixer saved with a left- (or right-) padding tokenizer embeds a text the same alone or beside
    longer texts, and each position reads the right column of its own layout: left-padded to L, the
    text ends at L - 1 as in training; right-padded, it starts at 0."""
    tokenizer = bpe_tokenizer(stories)
    tokenizer.padding_side = tokenizer.init_kwargs["padding_side"] = side  # as training.py saves it
    torch.manual_seed(0)
    L = 48
    spec = ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=2, seq_len=L)
    model, _ = build_model(
        spec, len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_language_model(tmp_path)
    assert input_side(model, tokenizer, SCORE) == side  # the saved side survives loading
    text = "the cat sat on the mat."
    ids = tokenizer(text)["input_ids"]
    n = len(ids)
    layout = torch.full((1, L), tokenizer.pad_token_id)  # (1, L): the text where training put it
    mask = torch.zeros_like(layout)
    cols = slice(L - n, L) if side == "left" else slice(0, n)
    layout[0, cols], mask[0, cols] = torch.tensor(ids), 1
    with torch.no_grad():
        hidden = model.base_model(input_ids=layout, attention_mask=mask).last_hidden_state[0]  # (L, d)
    last = L - 1 if side == "left" else n - 1
    expected_column = {"second-to-last": last - 1, "last-token": last, "last": L - 1}
    for position in POSITIONS:
        alone = embed_texts(model, tokenizer, [text], position, progress=False)[0]
        batched = embed_texts(
            model, tokenizer, [stories[0], text, stories[1] * 3], position, batch_size=3, progress=False
        )[1]
        torch.testing.assert_close(alone, batched, rtol=0, atol=1e-5)
        torch.testing.assert_close(alone, hidden[expected_column[position]], rtol=0, atol=1e-5)


def test_only_families_whose_positions_are_rows_take_the_tokenizers_padding_side(stories):
    """A left-padding tokenizer left-pads a mixer but not Llama, whose positions start at 0 under right padding."""
    tokenizer = bpe_tokenizer(stories[:50])
    tokenizer.padding_side = "left"
    for family, expected in (("mixer", "left"), ("linear_mixer", "left"), ("llama", "right")):
        heads = dict(num_heads=2) if family == "llama" else {}
        model, _ = build_model(
            ModelSpec(family=family, hidden_size=32, num_hidden_layers=1, seq_len=16, **heads), len(tokenizer)
        )
        assert input_side(model, tokenizer, SCORE) == expected, family


def test_second_to_last_differs_from_last_token(model_dirs):
    model, tokenizer = load_language_model(model_dirs["mixer"])
    a = embed_texts(model, tokenizer, ["the cat sat on the mat."], "second-to-last", progress=False)
    b = embed_texts(model, tokenizer, ["the cat sat on the mat."], "last-token", progress=False)
    assert not torch.allclose(a, b)


def test_embed_command_and_safetensors_round_trip(tmp_path, model_dirs, stories):
    pairs = build_pairs(stories[:20], "sentence")
    pair_file = tmp_path / "pairs.jsonl"
    pair_file.write_text("".join(json.dumps({"query": p.query, "passage": p.passage}) + "\n" for p in pairs))
    out = tmp_path / "emb.safetensors"
    assert (
        main(["embed", str(model_dirs["mixer"]), "--pairs", str(pair_file), "--output", str(out), "--batch-size", "7"])
        == 0
    )
    tensors, metadata = load_embeddings(out)
    model, tokenizer = load_language_model(model_dirs["mixer"])
    expected = embed_texts(model, tokenizer, [p.passage for p in pairs], progress=False)
    torch.testing.assert_close(tensors["passages"], expected, rtol=0, atol=1e-5)
    assert tensors["queries"].shape == (len(pairs), 32) and metadata["position"] == "second-to-last"
    save_embeddings(tmp_path / "again.safetensors", tensors, metadata)
    again, meta2 = load_embeddings(tmp_path / "again.safetensors")
    assert all(torch.equal(again[k], tensors[k]) for k in tensors) and meta2 == metadata


# --- learning to retrieve -------------------------------------------------------------------


def _synthetic_embeddings(n: int, d: int = 16, seed: int = 0):
    """Passages are a fixed random rotation of their query plus noise: learnable, but not by cosine."""
    g = torch.Generator().manual_seed(seed)
    rotation = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    queries = torch.randn(n, d, generator=g)
    return queries, queries @ rotation + 0.3 * torch.randn(n, d, generator=g)


def test_direct_retrieval_mixer_beats_chance_on_held_out_pairs(tmp_path):
    queries, passages = _synthetic_embeddings(640)
    config = RetrievalMixerConfig(input_size=16, hidden_size=32, num_candidates=16, num_hidden_layers=2)
    model, history = train_direct(queries[:512], passages[:512], config, epochs=30, batch_size=32, learning_rate=2e-3)
    assert history[-1]["loss"] < history[0]["loss"]
    held_out = evaluate_direct(model, queries[512:], passages[512:])
    assert held_out["candidates"] == 16 and held_out["top1"] > 5 * held_out["chance_top1"], held_out
    model.save_pretrained(tmp_path / "retriever")  # save -> load round trip
    loaded = RetrievalMixer.from_pretrained(tmp_path / "retriever")
    assert evaluate_direct(loaded, queries[512:], passages[512:]) == held_out


def _made_up_words(rng: random.Random, k: int) -> list[str]:
    return ["".join(rng.choice("bcdfghjklmnprstvz") + rng.choice("aeiou") for _ in range(3)) for _ in range(k)]


def _cosine_top1(model, tokenizer, pairs: list[Pair], candidates: int = 32) -> float:
    queries = embed_texts(model, tokenizer, [p.query for p in pairs], progress=False)
    passages = embed_texts(model, tokenizer, [p.passage for p in pairs], progress=False)
    return metrics_vs_candidates(cosine_scores(queries, passages), [candidates], seed=0)[0]["top1"]


def test_infonce_teaches_a_tiny_language_model_to_retrieve(model_dirs):
    """Queries are made-up words, passages hold a different made-up word paired with each:
    no shared text, so only fine-tuning can match them."""
    rng = random.Random(0)
    keys, values = _made_up_words(rng, 40), _made_up_words(rng, 40)
    pairs = [Pair(f"find {k}", f"it was {v} all day", i) for i, (k, v) in enumerate(zip(keys, values))]
    model, tokenizer = load_language_model(model_dirs["mixer"])
    before = _cosine_top1(model, tokenizer, pairs)
    history = finetune_infonce(
        model,
        tokenizer,
        pairs,
        steps=60,
        batch_size=20,
        learning_rate=3e-3,
        temperature=0.1,
        progress=False,
        variant="in-batch",
    )
    after = _cosine_top1(model, tokenizer, pairs)
    assert history[-1]["loss"] < history[0]["loss"]
    assert after > 0.5 and after > before + 0.3, (before, after)


def test_retrieval_benchmark_and_command(tmp_path, model_dirs, stories, capsys):
    pairs = build_pairs(stories[:300], "sentence")
    splits = split_pairs(pairs, 0.25, seed=0, max_test=70)
    result = retrieval_benchmark(
        model_dirs["mixer"],
        model_dirs["llama"],
        splits,
        methods=("cosine", "direct", "infonce"),
        direct_candidates=(16,),
        direct_epochs=2,
        direct_layers=1,
        infonce_steps=2,
        infonce_batch_size=8,
        progress=False,
    )
    assert result["candidates"] == [32, 64]
    for name in ("mixer", "transformer"):
        model = result["models"][name]
        assert [r["candidates"] for r in model["cosine"]] == [32, 64] and model["direct"][0]["candidates"] == 16
        assert 0.0 <= model["infonce"][0]["top1"] <= 1.0
    assert result["bm25"][0]["top1"] > 0.3  # sentences share names with the rest of their story
    save_splits(tmp_path / "pairs", splits)
    out = tmp_path / "out"
    argv = [
        "retrieve",
        "--mixer",
        str(model_dirs["mixer"]),
        "--transformer",
        str(model_dirs["llama"]),
        "--pairs",
        str(tmp_path / "pairs"),
        "--output-dir",
        str(out),
        "--methods",
        "cosine",
        "--candidates",
        "32",
    ]
    assert main(argv) == 0
    written = json.loads((out / "retrieval.json").read_text())
    assert written["candidates"] == [32] and (out / "retrieval.png").stat().st_size > 1000
    assert main(argv[:-2] + ["--candidates", "4096"]) == 2  # too few test pairs: a one-line error
    direct = [
        "--methods",
        "direct",
        "--direct-candidates",
        "8",
        "--direct-epochs",
        "1",
        "--direct-mixing-init",
        "exchangeable",
    ]
    capsys.readouterr()
    assert main(argv[:-4] + direct + ["--candidates", "32"]) == 0
    printed = capsys.readouterr().out
    assert (
        "direct retrieval model" in printed
        and "| mixer | 9 | 8 | 1 |" in printed
        and "| transformer | 9 | 8 | 1 |" in printed
    )
