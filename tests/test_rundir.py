"""Atomic file writes (files.py) and the run folder (rundir.py): loading a run back, reading its metrics."""

import json
import os
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from masked_mixers.core.errors import UserError  # noqa: E402
from masked_mixers.core.files import atomic_write_json, atomic_write_text, save_figure, save_safetensors  # noqa: E402
from masked_mixers.runs.config import ModelSpec  # noqa: E402
from masked_mixers.runs.factory import build_model  # noqa: E402
from masked_mixers.runs.rundir import load_run, read_metrics  # noqa: E402

# --- files.py -------------------------------------------------------------------------------


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_leave_no_temporary_and_normal_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a" / "x.txt", "hello")
        atomic_write_json(tmp_path / "x.json", {"a": 1})
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        save_figure(fig, tmp_path / "x.png", bbox_inches="tight")
        save_safetensors(tmp_path / "x.safetensors", {"t": torch.ones(2, 3)}, {"n": 3})
    finally:
        os.umask(mask)
    assert (tmp_path / "a" / "x.txt").read_text() == "hello"
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
    assert (tmp_path / "x.png").read_bytes()[:4] == b"\x89PNG"
    assert not plt.get_fignums()  # the figure was closed
    for name in ("a/x.txt", "x.json", "x.png", "x.safetensors"):
        assert _mode(tmp_path / name) == 0o644, name  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "x.json", "x.png", "x.safetensors"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.safetensors"
    save_safetensors(path, {"t": torch.zeros(2)})
    before = path.read_bytes()
    with pytest.raises(AttributeError):  # 'str' has no .contiguous(): it fails inside the atomic write
        save_safetensors(path, {"t": "not a tensor"})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]


# --- read_metrics ---------------------------------------------------------------------------


def test_read_metrics_drops_a_torn_last_line(tmp_path):
    lines = [json.dumps({"step": 1, "loss": 2.0}), json.dumps({"step": 2, "loss": 1.5})]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]  # a run folder or the file itself
    assert read_metrics(tmp_path / "metrics.jsonl") == read_metrics(tmp_path)
    assert read_metrics(tmp_path / "nowhere") == []


def test_read_metrics_names_a_damaged_middle_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\ngarbage\n{"step": 3}\n')
    with pytest.raises(UserError, match=r"metrics.jsonl:2: not a JSON object"):
        read_metrics(path)


# --- load_run -------------------------------------------------------------------------------


def _tokenizer(padding_side: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        ["once upon a time there was a dog"] * 20,
        trainers.BpeTrainer(vocab_size=280, special_tokens=["<pad>", "<eos>"], show_progress=False),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", padding_side=padding_side
    )


@pytest.mark.parametrize(
    ("family", "class_name"), [("mixer", "MaskedMixerForCausalLM"), ("mixer_autoencoder", "AutoencodingMixer")]
)
def test_load_run_picks_the_class_by_task_and_keeps_the_padding_side(tmp_path, family, class_name):
    tokenizer = _tokenizer("left")
    spec = ModelSpec(family=family, hidden_size=16, num_hidden_layers=2, seq_len=8)
    model, _ = build_model(
        spec, len(tokenizer), pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
    )
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, loaded_tokenizer = load_run(tmp_path)
    assert type(loaded).__name__ == class_name and not loaded.training
    assert loaded_tokenizer.padding_side == "left"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_load_run_errors_are_one_line(tmp_path):
    with pytest.raises(UserError, match="not a model directory"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt_unknown"}')
    with pytest.raises(UserError, match="cannot read the model config") as err:
        load_run(tmp_path)
    assert "\n" not in str(err.value)
