"""Run configs: every shipped YAML loads, keys and types are checked, YAML round-trips."""

from pathlib import Path

import pytest
import yaml

from masked_mixers.compare.config import load_compare_config
from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import RunConfig, apply_overrides, from_dict, load_run_config, save_yaml, to_dict
from masked_mixers.runs.factory import build_model, count_parameters
from masked_mixers.sweep.config import base_mapping, load_sweep_config, override_sets, resolve

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load(path):
    data = yaml.safe_load(path.read_text())
    if "models" in data:  # a compare config: a list of models
        assert all(spec.hidden_size > 0 for spec in load_compare_config(path).models)
    elif "grid" in data or "points" in data:  # a sweep config: every point resolves to a run config
        sweep = load_sweep_config(path)
        base, points = base_mapping(sweep, path), override_sets(sweep, path)
        assert points and all(resolve(base, point, str(path)).model.hidden_size > 0 for point in points)
    else:
        assert load_run_config(path).model.hidden_size > 0


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  lr_rate: 0.1\n")
    with pytest.raises(UserError, match=r"run.yaml: unknown key 'train.lr_rate'"):
        load_run_config(path)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model": {"hidden_size": "big"}}, "model.hidden_size"),
        ({"train": {"max_steps": True}}, "train.max_steps"),
        ({"data": {"source": ["a.jsonl", 3]}}, "data.source"),
        ({"model": 5}, "'model' must be a mapping"),
        ({"oops": {}}, "unknown key 'oops'"),
    ],
)
def test_bad_values_are_named(data, message):
    with pytest.raises(UserError, match=message):
        from_dict(RunConfig, data, "x.yaml")


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_run_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml: not valid YAML"):
        load_run_config(bad)


def test_yaml_round_trip_and_overrides(tmp_path):
    run = from_dict(RunConfig, {"model": {"family": "llama", "hidden_size": 64}, "train": {"learning_rate": 1}})
    assert run.train.learning_rate == 1.0 and isinstance(run.train.learning_rate, float)
    save_yaml(run, tmp_path / "run.yaml")
    assert load_run_config(tmp_path / "run.yaml") == run
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away
    over = load_run_config(tmp_path / "run.yaml", ["train.max_steps=7", "model.mixer_type=expanded"])
    assert over.train.max_steps == 7 and over.model.mixer_type == "expanded"
    assert apply_overrides({}, ["data.source=[a, b]"]) == {"data": {"source": ["a", "b"]}}
    with pytest.raises(UserError, match="unknown key 'train.nope'"):
        load_run_config(tmp_path / "run.yaml", ["train.nope=1"])
    assert to_dict(run)["model"]["family"] == "llama"


@pytest.mark.parametrize("family", ["mixer", "llama"])
def test_build_model_counts_parameters(family):
    run = from_dict(
        RunConfig,
        {"model": {"family": family, "hidden_size": 32, "num_hidden_layers": 2, "seq_len": 16, "num_heads": 4}},
    )
    model, count = build_model(run.model, vocab_size=100)
    assert count.total == sum(p.numel() for p in model.parameters())
    assert count.embedding == 2 * 100 * 32  # untied: input embedding + LM head
    run.model.tie_word_embeddings = True
    tied, tied_count = build_model(run.model, vocab_size=100)
    assert tied_count.total == count.total - 100 * 32
    assert count_parameters(tied).embedding == 100 * 32


def test_model_vocab_smaller_than_tokenizer_is_an_error():
    run = from_dict(RunConfig, {"model": {"vocab_size": 50, "hidden_size": 16, "seq_len": 8}})
    with pytest.raises(UserError, match="tokenizer has 100 tokens but the model only 50"):
        build_model(run.model, vocab_size=100)
    with pytest.raises(UserError, match="unknown family 'gpt'"):
        build_model(from_dict(RunConfig, {"model": {"family": "gpt"}}).model, vocab_size=10)
    with pytest.raises(UserError, match="mixer_type"):
        build_model(from_dict(RunConfig, {"model": {"mixer_type": "wide"}}).model, vocab_size=10)


def test_closed_choices_name_the_key_and_the_choices(tmp_path):
    with pytest.raises(
        UserError, match=r"^x.yaml: key 'model.mixer_type' expects one of 'flat', 'expanded', 'multihead', got 'x'$"
    ):
        from_dict(RunConfig, {"model": {"mixer_type": "x"}}, "x.yaml")
    with pytest.raises(
        UserError, match=r"key 'train.precision' expects one of 'auto', 'fp32', 'bf16', 'fp16', got 'fp8'"
    ):
        load_run_config(_write(tmp_path / "run.yaml", "train: {}\n"), ["train.precision=fp8"])
    assert from_dict(RunConfig, {"data": {"padding_side": "left"}}).data.padding_side == "left"


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", ["- model\n- data\n", "just a string\n", "42\n"])
@pytest.mark.parametrize("loader", [load_run_config, load_compare_config])
def test_top_level_that_is_not_a_mapping_is_one_line(tmp_path, text, loader):
    with pytest.raises(UserError, match=r"bad.yaml: expected a mapping of sections") as err:
        loader(_write(tmp_path / "bad.yaml", text))
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no 'model' section"):  # an empty file would train the default model unasked
        load_run_config(_write(tmp_path / "empty.yaml", ""))
    assert (
        load_run_config(_write(tmp_path / "model-only.yaml", "model: {}\n")) == RunConfig()
    )  # sections present: defaults


def test_retrieval_settings_are_one_definition_for_config_and_cli():
    """The compare config's retrieval section and the pairs/embed/retrieve options share defaults."""
    import argparse
    import dataclasses

    from masked_mixers.cli import build_parser
    from masked_mixers.compare.config import RetrievalTaskConfig
    from masked_mixers.retrieval.settings import RetrievalSettings

    config = RetrievalTaskConfig()
    defaults = RetrievalSettings()
    for command in ("pairs", "embed", "retrieve"):
        parser = build_parser(command)
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        for action in sub._actions:
            if action.dest in {f.name for f in dataclasses.fields(RetrievalSettings)}:
                assert action.default == getattr(defaults, action.dest) == getattr(config, action.dest), (
                    command,
                    action.dest,
                )
                assert action.help, (command, action.dest)


def test_closed_choices_match_the_models_own_lists():
    """The schema's Literal choices are checked at load time; the model configs check the same lists."""
    import typing

    from masked_mixers.models.linear_mixer.configuration import LINEAR_VARIANTS
    from masked_mixers.models.masked_mixer.configuration import MIXER_TYPES
    from masked_mixers.runs.config import KNOBS

    assert typing.get_args(KNOBS["mixer_type"].type) == MIXER_TYPES
    assert typing.get_args(KNOBS["linear_variant"].type) == LINEAR_VARIANTS
