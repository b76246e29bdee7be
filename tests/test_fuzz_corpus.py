"""Fuzz the corpus readers through prepare_data: whatever a .txt/.jsonl/.json/.parquet file holds
(random bytes, wrong field types, empty), the result is prepared data or one UserError line naming
the file, and the cache never holds a half-written entry."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from masked_mixers.core.errors import UserError
from masked_mixers.data import prepare_data, train_tokenizer
from masked_mixers.runs.config import DataConfig

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_names = itertools.count()  # a new file per example: no reader cache can serve an older example

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["text", "id", "x"]), inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.dictionaries(st.sampled_from(["text", "id", "story"]), json_values, max_size=3)


@st.composite
def corpus_files(draw) -> tuple[str, bytes]:
    """(suffix, content): random bytes, or well-formed files with random (often wrongly typed) fields."""
    suffix = draw(st.sampled_from([".txt", ".jsonl", ".json", ".parquet"]))
    if draw(st.integers(0, 3)) == 0:
        return suffix, draw(st.binary(max_size=200))
    if suffix == ".txt":
        return suffix, draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
    if suffix == ".jsonl":
        lines = draw(st.lists(st.one_of(records.map(json.dumps), st.text(max_size=20)), max_size=8))
        return suffix, "\n".join(lines).encode("utf-8", "surrogatepass")
    if suffix == ".json":
        return suffix, json.dumps(draw(st.one_of(st.lists(records, max_size=6), json_values))).encode()
    column = draw(
        st.one_of(
            st.lists(st.text(max_size=40), max_size=8),
            st.lists(st.integers(-5, 5), max_size=8),
            st.lists(st.booleans(), max_size=4),
        )
    )
    sink = io.BytesIO()
    pq.write_table(pa.table({draw(st.sampled_from(["text", "content"])): column}), sink)
    return suffix, sink.getvalue()


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    train_tokenizer(["once upon a time there was a little cat"] * 10, 280).backend_tokenizer.save(str(path))
    return path


@SETTINGS
@given(file=corpus_files())
def test_any_corpus_file_prepares_or_is_one_user_error(tmp_path, tokenizer_file, datasets_cache, file):
    suffix, content = file
    corpus = tmp_path / f"corpus{next(_names)}{suffix}"
    corpus.write_bytes(content)
    cache = tmp_path / "cache"
    data = DataConfig(source=str(corpus), tokenizer=str(tokenizer_file), eval_fraction=0.5, cache_dir=str(cache))
    try:
        prepared = prepare_data(data, 4, progress=False)
    except UserError as err:
        message = str(err)
        event(f"{suffix}: UserError")
        assert "\n" not in message.strip() and message.strip(), message
        assert corpus.name in message or "data." in message, message  # names the file or the key
    else:
        assert len(prepared.train) > 0 and len(prepared.eval) > 0
        event(f"{suffix}: prepared")
    entries = list((cache / "prepared").iterdir()) if (cache / "prepared").is_dir() else []
    assert all(not e.name.startswith(".") and (e / "prepared.json").is_file() for e in entries), entries
