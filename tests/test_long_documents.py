"""Issue 24: a document's encoding work is bounded whatever its length (one 50 MB line used to be
encoded whole, 9.6 GB peak). Checked on what the tokenizer is given (characters per encode call),
and that the ids and byte counts are those of encoding the document whole."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from conftest import SHARED, VALID

from masked_mixers.data import examples
from masked_mixers.data.examples import (
    EncodedDocument,
    encode_documents,
    max_token_chars,
    pack_rows,
    pad_rows,
    text_pieces,
)
from masked_mixers.data.tokenizer import load_tokenizer, train_tokenizer

STORIES = [json.loads(line)["text"] for line in VALID.read_text(encoding="utf-8").splitlines()[:2000]]
LONG = " ".join(STORIES)  # about 0.8 MB, one document


class Spy:
    """Stands in for a tokenizer's backend: records the length of every text it encodes."""

    def __init__(self, backend):
        self.backend, self.lengths = backend, []

    def encode(self, text, **kwargs):
        self.lengths.append(len(text))
        return self.backend.encode(text, **kwargs)

    def encode_batch(self, texts, **kwargs):
        self.lengths.extend(map(len, texts))
        return self.backend.encode_batch(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.backend, name)


@pytest.fixture(scope="module", params=["byte-level BPE", "SentencePiece"])
def tokenizer(request):
    if request.param == "byte-level BPE":
        return train_tokenizer(STORIES[:400], 512)
    return load_tokenizer(str(SHARED / "tokenizers" / "tinystories-sp4096.model"))


@pytest.fixture()
def spy(tokenizer):
    real = tokenizer._tokenizer
    tokenizer._tokenizer = spy = Spy(real)
    yield spy
    tokenizer._tokenizer = real


def _whole(text: str, tokenizer, add_bos: bool, add_eos: bool) -> EncodedDocument:
    """The document encoded whole, as before; sent through pickle, which keeps its per-token byte
    counts instead of its Encoding (the same numbers, and prefix_bytes no longer slices the text)."""
    encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
    doc = EncodedDocument(
        text, encoding, [tokenizer.bos_token_id] if add_bos else [], [tokenizer.eos_token_id] if add_eos else []
    )
    return pickle.loads(pickle.dumps(doc))


def test_packed_long_document_is_encoded_in_bounded_pieces_with_the_whole_documents_tokens(tokenizer, spy):
    docs = encode_documents([STORIES[0], LONG, STORIES[1]], tokenizer, True, True)
    assert max(spy.lengths) <= 2 * examples.PIECE_CHARS < len(LONG)
    assert sum(spy.lengths) == len(STORIES[0]) + len(LONG) + len(STORIES[1])  # every character encoded once
    spy.lengths.clear()
    whole = [_whole(text, tokenizer, True, True) for text in (STORIES[0], LONG, STORIES[1])]
    assert max(spy.lengths) == len(LONG)  # (the reference did encode it whole)
    for L in (32, 512):
        got, want = pack_rows(docs, L), pack_rows(whole, L)
        np.testing.assert_array_equal(got["input_ids"], want["input_ids"])
        np.testing.assert_array_equal(got["num_bytes"], want["num_bytes"])


@pytest.mark.parametrize("L", [32, 512])
def test_truncated_long_document_encodes_only_a_bounded_prefix(tokenizer, spy, L):
    docs = encode_documents([LONG, STORIES[2]], tokenizer, True, False, keep=L)
    assert max(spy.lengths) <= 2 * (L + 1) * max_token_chars(tokenizer)
    assert max(spy.lengths) < len(LONG) // 10
    spy.lengths.clear()
    got, want = pad_rows(docs, L), pad_rows([_whole(t, tokenizer, True, False) for t in (LONG, STORIES[2])], L)
    for a, b in zip(got["input_ids"], want["input_ids"]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got["num_bytes"], want["num_bytes"])


def test_short_documents_are_encoded_whole_as_before(tokenizer, spy):
    texts = STORIES[:50]
    for keep in (None, 64):
        spy.lengths.clear()
        docs = encode_documents(texts, tokenizer, False, False, keep=keep)
        assert sorted(spy.lengths) == sorted(map(len, texts))
        for doc, text in zip(docs, texts):
            np.testing.assert_array_equal(doc.ids, tokenizer(text, add_special_tokens=False)["input_ids"])


def test_text_without_spaces_is_cut_hard_at_twice_the_piece_size():
    text = "x" * 10_000 + " tail"
    pieces = list(text_pieces(text, 1000))
    assert "".join(pieces) == text and max(map(len, pieces)) <= 2000
    spaced = ("abc " * 2000).strip()
    pieces = list(text_pieces(spaced, 1000))
    assert "".join(pieces) == spaced and all(p.startswith(" ") for p in pieces[1:]) and max(map(len, pieces)) <= 2000
