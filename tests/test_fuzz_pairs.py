"""Fuzz the pair-file reader (retrieval/pairs.py): whatever the bytes or records, the result is a list
of (str, str, int) pairs or one UserError naming the file."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masked_mixers.core.errors import UserError
from masked_mixers.retrieval.pairs import read_pairs

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False), st.text(max_size=12)
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
records = st.dictionaries(st.sampled_from(["query", "passage", "doc_id", "other"]), json_values, max_size=4)


def _check(path):
    try:
        pairs = read_pairs(path)
    except UserError as err:
        assert "\n" not in str(err).strip() and str(path) in str(err)
        return
    assert pairs and all(isinstance(p.query, str) and isinstance(p.passage, str) for p in pairs)
    assert all(isinstance(p.doc_id, int) and not isinstance(p.doc_id, bool) for p in pairs)


@SETTINGS
@given(raw=st.binary(max_size=400))
def test_random_bytes(tmp_path, raw):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(raw)
    _check(path)


@SETTINGS
@given(lines=st.lists(st.one_of(records, json_values), max_size=6))
def test_random_records(tmp_path, lines):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    _check(path)
