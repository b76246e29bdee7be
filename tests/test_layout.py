"""runs/layout.py: the one owner of the padding side, checked once and applied everywhere."""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from masked_mixers.core.errors import UserError
from masked_mixers.models import FAMILIES
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model
from masked_mixers.runs.layout import (
    GENERATE,
    SCORE,
    check_padding_side,
    columns,
    input_side,
    place,
    record_padding_side,
)


def _tokenizer(side: str = "right") -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate("a b c d e f".split())}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>")
    tokenizer.padding_side = side
    return tokenizer


def _model(family: str):
    heads = dict(num_heads=2) if "num_heads" in FAMILIES[family].knob_names else {}
    model, _ = build_model(
        ModelSpec(family=family, hidden_size=16, num_hidden_layers=1, seq_len=8, **heads), vocab_size=8
    )
    return model


def test_a_bad_side_is_one_line_naming_the_key():
    assert check_padding_side("left") == "left"
    with pytest.raises(UserError, match=r"data\.padding_side: 'up' is not 'right' or 'left'"):
        check_padding_side("up", "data.padding_side")


def test_place_and_columns_put_rows_on_their_side():
    assert columns(3, 5, "right") == slice(0, 3) and columns(3, 5, "left") == slice(2, 5)
    right = place([[4, 5, 6], [7]], 4, "right", 0)
    left = place([[4, 5, 6], [7]], 4, "left", 0)
    assert right["input_ids"].tolist() == [[4, 5, 6, 0], [7, 0, 0, 0]] and right["attention_mask"].tolist() == [
        [1, 1, 1, 0],
        [1, 0, 0, 0],
    ]
    assert left["input_ids"].tolist() == [[0, 4, 5, 6], [0, 0, 0, 7]] and left["attention_mask"].tolist() == [
        [0, 1, 1, 1],
        [0, 0, 0, 1],
    ]


@pytest.mark.parametrize(
    "family", [name for name, f in FAMILIES.items() if f.task == "causal_lm" and f.capabilities.generates]
)
def test_rows_families_keep_their_trained_side_and_the_others_follow_the_purpose(family):
    model, tokenizer = _model(family), _tokenizer()
    record_padding_side(model, tokenizer, "left")
    assert tokenizer.padding_side == tokenizer.init_kwargs["padding_side"] == "left"
    if FAMILIES[family].capabilities.positions_are_rows:
        assert model.config.padding_side == "left"  # every rows family declares it (the transfixer included)
        assert input_side(model, tokenizer, GENERATE) == input_side(model, tokenizer, SCORE) == "left"
        assert input_side(model, tokenizer, GENERATE, override="right") == "right"
        with pytest.raises(UserError, match="padding_side"):
            input_side(model, tokenizer, GENERATE, override="middle")
    else:
        assert getattr(model.config, "padding_side", None) is None
        assert input_side(model, tokenizer, GENERATE) == "left" and input_side(model, tokenizer, SCORE) == "right"


def test_an_unrecorded_side_falls_back_to_the_tokenizer():
    model, tokenizer = _model("mixer"), _tokenizer("left")
    assert model.config.padding_side is None
    assert input_side(model, tokenizer, SCORE) == "left"
    tokenizer.padding_side = "sideways"
    with pytest.raises(UserError, match="padding_side"):
        input_side(model, tokenizer, SCORE)


def test_data_preparation_places_rows_by_the_same_rule():
    import numpy as np

    from masked_mixers.data.examples import Layout, expand_batch

    for side in ("right", "left"):
        out = expand_batch(
            {"input_ids": [[4, 5, 6], [7]]}, Layout(seq_len=4, packed=False, padding_side=side, pad_token_id=0)
        )
        expected = place([[4, 5, 6], [7]], 4, side, 0)
        assert np.array_equal(out["input_ids"], expected["input_ids"].numpy())
        assert np.array_equal(out["attention_mask"], expected["attention_mask"].numpy())
    assert torch.is_tensor(expected["input_ids"])
