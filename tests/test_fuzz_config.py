"""Fuzz the config loader: whatever the bytes, the result is a RunConfig or one UserError."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masked_mixers.config import RunConfig, from_dict, load_run_config
from masked_mixers.errors import UserError

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
keys = st.sampled_from(["model", "data", "train", "hidden_size", "max_steps", "source", "family", "x"])
sections = st.dictionaries(keys, st.one_of(values, st.dictionaries(st.sampled_from(["hidden_size", "seq_len", "source", "max_steps", "learning_rate", "report_to", "bogus"]), values, max_size=4)), max_size=4)


def _only_user_errors(load):
    try:
        result = load()
    except UserError as err:
        assert "\n" not in str(err).strip()
        return
    assert isinstance(result, RunConfig)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_random_bytes(tmp_path, raw):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(raw)
    _only_user_errors(lambda: load_run_config(path))


@SETTINGS
@given(text=st.text(alphabet=string.printable, max_size=200))
def test_random_text(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    _only_user_errors(lambda: load_run_config(path))


@SETTINGS
@given(data=st.one_of(values, sections))
def test_random_structures(data):
    _only_user_errors(lambda: from_dict(RunConfig, data, "fuzz.yaml"))
