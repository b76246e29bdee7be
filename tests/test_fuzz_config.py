"""Fuzz the config loader: whatever the bytes, the result is a RunConfig or one UserError."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import RunConfig, from_dict, load_run_config

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True), st.text(max_size=20)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
keys = st.sampled_from(["model", "data", "train", "hidden_size", "max_steps", "source", "family", "x"])
sections = st.dictionaries(
    keys,
    st.one_of(
        values,
        st.dictionaries(
            st.sampled_from(["hidden_size", "seq_len", "source", "max_steps", "learning_rate", "report_to", "bogus"]),
            values,
            max_size=4,
        ),
    ),
    max_size=4,
)


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


# --- numeric values: whatever the loader accepts, Hugging Face and the model factory accept too -------

NUMERIC_KEYS = {
    "train": [
        "max_steps",
        "max_seconds",
        "max_flops",
        "batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "learning_rate",
        "warmup_steps",
        "weight_decay",
        "adam_beta1",
        "adam_beta2",
        "max_grad_norm",
        "eval_steps",
        "max_eval_batches",
        "save_steps",
        "save_total_limit",
        "logging_steps",
        "seed",
        "num_workers",
    ],
    "model": [
        "hidden_size",
        "num_hidden_layers",
        "seq_len",
        "num_heads",
        "expansion",
        "ff_mult",
        "dropout",
        "vocab_size",
    ],
    "data": ["eval_fraction", "max_documents", "vocab_size", "num_proc"],
}
numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.0, 0.5, 1.0, 2**32, 10**9]),
)
numeric_section = st.sampled_from(sorted(NUMERIC_KEYS)).flatmap(
    lambda section: st.tuples(
        st.just(section), st.dictionaries(st.sampled_from(NUMERIC_KEYS[section]), numbers, min_size=1, max_size=4)
    )
)


@settings(max_examples=150, deadline=None)
@given(change=numeric_section)
def test_numeric_values_are_refused_in_one_line_or_accepted_downstream(change):
    import math

    from masked_mixers.training.train import training_arguments

    section, values = change
    base = {"model": {"family": "mixer", "hidden_size": 32, "num_hidden_layers": 1, "seq_len": 32, "num_heads": 4}}
    data = {**base, section: {**base.get(section, {}), **values}}
    try:
        run = from_dict(RunConfig, data, "fuzz.yaml")
    except UserError as err:
        message = str(err)
        assert "\n" not in message and message.startswith("fuzz.yaml: key ")
        assert any(f"'{section}.{key}'" in message for key in values), message
        return
    t = run.train
    assert t.batch_size >= 1 and t.gradient_accumulation_steps >= 1 and t.max_steps >= 1 and t.logging_steps >= 1
    assert math.isfinite(t.learning_rate) and t.learning_rate >= 0 and t.warmup_steps >= 0 and t.save_steps >= 0
    assert all(v is None or (math.isfinite(v) and v > 0) for v in (t.max_seconds, t.max_flops))
    assert 1 <= run.model.seq_len <= 2**20 and 0 <= run.model.dropout < 1 and 0 <= run.data.eval_fraction < 1
    if section == "train":
        training_arguments(run, has_eval=True)  # Hugging Face's own checks never fire on an accepted config
