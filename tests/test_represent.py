"""Representation accuracy: the probe recovers real inputs from an untrained mixer, and the metric counts right."""

import json

import pytest
import torch
from conftest import VALID
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from masked_mixers.cli import main
from masked_mixers.probes.representation import (
    PROTOCOLS,
    InversionSettings,
    block_hidden_state,
    decode_embeddings,
    frozen,
    invert_hidden_state,
    protocol_settings,
    recovery_counts,
    representation_accuracy,
)
from masked_mixers.runs.config import ModelSpec, RunConfig, save_yaml
from masked_mixers.runs.factory import build_model

STORIES = VALID
VOCAB = 256


@pytest.fixture(scope="module")
def story_ids() -> torch.Tensor:
    """(4, 16) token ids of real stories, from a byte-level BPE trained on the fly."""
    texts = [json.loads(line)["text"] for line in STORIES.read_text(encoding="utf-8").splitlines()[:100]]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    tokenizer.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<pad>"], show_progress=False)
    )
    return torch.tensor([tokenizer.encode(t).ids[:16] for t in texts[:4]])


def _mixer(layers: int = 1):
    torch.manual_seed(0)
    model, _ = build_model(ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=layers, seq_len=16), VOCAB)
    return model


def test_untrained_one_layer_mixer_gives_back_its_input(story_ids):
    model = _mixer()
    result = representation_accuracy(
        model, story_ids, None, block=1, settings=protocol_settings("adam", steps=150), batch_size=4
    )
    assert result.hamming <= 0.05
    assert result.top1 >= 0.9
    assert result.num_tokens == story_ids.numel()
    assert len(result.per_position) == 16 and len(result.loss_curve) == 150
    assert result.loss_curve[-1] < 0.05 * result.loss_curve[0]


def test_without_descent_the_random_start_decodes_to_noise(story_ids):
    """The control: zero steps leaves random embeddings, which must score near the worst."""
    result = representation_accuracy(
        _mixer(), story_ids, None, block=1, settings=InversionSettings(steps=0), batch_size=4
    )
    assert result.hamming > 0.8


def test_model_is_left_as_it_was(story_ids):
    model = _mixer().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    representation_accuracy(model, story_ids[:1], None, block=1, settings=protocol_settings("paper", steps=3))
    assert model.training and all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("method", ["pinv", "nearest"])
def test_exact_embeddings_decode_to_their_tokens(method):
    torch.manual_seed(0)
    weight = torch.randn(100, 16)
    ids = torch.randint(0, 100, (2, 5))
    topk = decode_embeddings(weight[ids], weight, method, k=3)
    assert topk.shape == (2, 5, 3)
    assert torch.equal(topk[..., 0], ids)


# --- the metric on hand-made cases ------------------------------------------------------------

TRUE = torch.tensor([[1, 2, 3, 4]])


def _topk(*rows):
    return torch.tensor([rows])  # (1, t, k)


def test_metric_all_right_and_all_wrong():
    right = recovery_counts(_topk([1, 9], [2, 9], [3, 9], [4, 9]), TRUE)
    assert (right.hamming, right.top1, right.per_position) == (0.0, 1.0, [0.0] * 4)
    wrong = recovery_counts(_topk([5, 6], [5, 6], [5, 6], [5, 6]), TRUE)
    assert (wrong.hamming, wrong.top1, wrong.per_position) == (1.0, 0.0, [1.0] * 4)


def test_metric_top_k_semantics():
    """A true token anywhere in the top k is a hit for the Hamming metric but a miss for top-1."""
    counts = recovery_counts(_topk([9, 1], [2, 9], [9, 8], [9, 4]), TRUE)
    assert counts.hamming == 0.25  # only position 2 misses
    assert counts.top1 == 0.25  # only position 1 is exact
    assert counts.per_position == [0.0, 0.0, 1.0, 0.0]


def test_metric_excludes_pad_positions():
    mask = torch.tensor([[1, 1, 0, 0]])
    counts = recovery_counts(_topk([1], [5], [5], [5]), TRUE, mask)  # the two wrong pads do not count
    assert counts.hamming == 0.5 and counts.top1 == 0.5
    assert counts.per_position == [0.0, 1.0, None, None]


def test_metric_adds_up_over_batches():
    a = recovery_counts(_topk([1], [2], [5], [5]), TRUE)
    b = recovery_counts(_topk([5], [5], [5], [5]), TRUE)
    assert (a + b).hamming == 6 / 8
    assert (a + b).per_position == [0.5, 0.5, 1.0, 1.0]


def test_metric_per_sequence_is_the_papers_average():
    """The paper averages each sequence's miss fraction; pooling over tokens weighs long sequences more."""
    true = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4]])
    topk = torch.tensor(
        [[[1], [2], [3], [4]], [[1], [7], [7], [7]]]
    )  # row 0 all right; row 1: 1 of its 2 real tokens wrong
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    counts = recovery_counts(topk, true, mask)
    assert counts.sequence_misses == [0.0, 0.5]
    assert counts.sequence_hamming == 0.25  # (0 + 1/2) / 2 sequences
    assert counts.hamming == pytest.approx(1 / 6)  # 1 miss in 6 real tokens
    assert (
        recovery_counts(torch.tensor([[[5]]]), torch.tensor([[1]]), torch.tensor([[0]])).sequence_misses == []
    )  # no real token: left out


# --- the paper's protocol (findings.md F1) ----------------------------------------------------


def _llama(layers: int = 2):
    torch.manual_seed(0)
    model, _ = build_model(
        ModelSpec(family="llama", hidden_size=16, num_hidden_layers=layers, seq_len=8, num_heads=2), VOCAB
    )
    return model


def _last_layer_output(model, embeds, mask):
    """The last decoder layer's own output, read by a forward hook: before any final norm, independent of
    hidden_states."""
    layers = next(
        m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == model.config.num_hidden_layers
    )
    seen = []
    handle = layers[-1].register_forward_hook(
        lambda mod, args, out: seen.append(out[0] if isinstance(out, tuple) else out)
    )
    try:
        model(inputs_embeds=embeds, attention_mask=mask)
    finally:
        handle.remove()
    return seen[-1]


def test_paper_protocol_is_findings_f1():
    paper = PROTOCOLS["paper"]
    assert (paper.optimizer, paper.learning_rate, paper.final_lr_fraction, paper.schedule, paper.steps) == (
        "sgd",
        0.02,
        0.1,
        "linear",
        500,
    )
    assert (paper.loss, paper.reduction, paper.start, paper.decode, paper.top_k, paper.average) == (
        "l1",
        "sum",
        "normal",
        "pinv",
        5,
        "sequence",
    )
    assert paper.lr_factor(0) == 1.0 and paper.lr_factor(500) == pytest.approx(0.1)  # 0.02 -> 0.002
    assert InversionSettings() == paper  # the default
    assert protocol_settings("paper").protocol == "paper"
    assert protocol_settings("paper", learning_rate=0.5).protocol == "paper variant (learning_rate=0.5)"
    assert protocol_settings("adam", seed=3).protocol == "adam"


def test_two_paper_steps_equal_the_hand_computed_update():
    """x0 ~ N(0, 1) (not the embedding's 0.02 scale), g = grad of the L1 distance summed over every
    element (pads too) to the last layer's pre-norm output, x1 = x0 - 0.02 g(x0), x2 = x1 - 0.011 g(x1)
    (lr falls linearly: 0.02 (n - i)/n + 0.002 i/n with n = 2, i = 1)."""
    model = _llama()
    ids = torch.randint(3, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    with frozen(model):
        target = _last_layer_output(model, model.get_input_embeddings()(ids), mask)
        assert not torch.allclose(
            target, model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        )  # the norm matters

        def grad_and_loss(x):
            x = x.clone().requires_grad_(True)
            loss = (_last_layer_output(model, x, mask) - target).abs().sum()
            loss.backward()
            return x.grad, loss.item()

        x0 = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
        g0, loss0 = grad_and_loss(x0)
        x1 = x0 - 0.02 * g0
        g1, loss1 = grad_and_loss(x1)
        x2 = x1 - (0.02 * 1 / 2 + 0.002 * 1 / 2) * g1
        recovered, losses = invert_hidden_state(model, target, mask, 2, protocol_settings("paper", steps=2), scale=0.02)
    torch.testing.assert_close(recovered, x2, rtol=1e-5, atol=1e-6)
    assert losses == pytest.approx([loss0, loss1], rel=1e-5)


@pytest.mark.parametrize("family", ["mixer", "llama", "llama_ablated", "gpt2"])
def test_every_block_target_is_before_any_final_norm(family):
    torch.manual_seed(0)
    fields = dict(hidden_size=16, num_hidden_layers=2, seq_len=8) | ({} if family == "mixer" else dict(num_heads=2))
    model, _ = build_model(ModelSpec(family=family, **fields), VOCAB)
    model.eval()
    ids = torch.randint(3, VOCAB, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
        torch.testing.assert_close(
            block_hidden_state(model, embeds, None, 2), _last_layer_output(model, embeds, None), rtol=0, atol=0
        )
        assert "tie_last_hidden_states" not in model.config.to_dict()  # the switch is put back


def test_settings_reject_unknown_choices():
    with pytest.raises(ValueError, match="decode"):
        InversionSettings(decode="cosine")


# --- the command ------------------------------------------------------------------------------


def _yaml(tmp_path, family):
    path = tmp_path / f"{family}.yaml"
    path.write_text(
        f"model:\n  family: {family}\n  hidden_size: 32\n  num_hidden_layers: 2\n  seq_len: 12\n  vocab_size: {VOCAB}\n"
    )
    return str(path)


def test_represent_command_writes_json_and_plot(tmp_path, story_ids, capsys):
    ids = tmp_path / "ids.json"
    ids.write_text(json.dumps([story_ids[0].tolist(), story_ids[1, :6].tolist()]))  # the second is shorter: padded
    out = tmp_path / "out"
    argv = [
        "represent",
        _yaml(tmp_path, "mixer"),
        _yaml(tmp_path, "llama"),
        "--ids",
        str(ids),
        "--blocks",
        "1",
        "2",
        "3",
        "--steps",
        "4",
        "--protocol",
        "paper",
        "adam",
        "--output-dir",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads((out / "represent.json").read_text())
    assert (out / "represent.png").stat().st_size > 0
    names = ["paper variant (steps=4)", "adam variant (steps=4)"]
    assert [p["protocol"] for p in report["protocols"]] == names
    assert (out / "represent.md").read_text().startswith("| model | block | " + " | ".join(names) + " |")
    assert report["inputs"]["seq_len"] == 12 and report["inputs"]["num_tokens"] == 12 + 6
    assert [m["model_type"] for m in report["models"]] == ["masked_mixer", "llama"]
    for entry in report["models"]:
        assert [(r["protocol"], r["block"]) for r in entry["results"]] == [
            (n, b) for n in names for b in (1, 2)
        ]  # block 3 is beyond the depth: skipped
        assert all(0.0 <= r["hamming"] <= 1.0 and len(r["loss_curve"]) == 4 for r in entry["results"])
        assert len(entry["results"][0]["per_position"]) == 12
    assert "skipping block(s) [3]" in capsys.readouterr().out


def test_represent_command_names_a_bad_ids_file(tmp_path, capsys):
    bad = tmp_path / "ids.json"
    bad.write_text('{"not": "a list"}')
    assert (
        main(["represent", _yaml(tmp_path, "mixer"), "--ids", str(bad), "--steps", "1", "--output-dir", str(tmp_path)])
        == 2
    )
    assert str(bad) in capsys.readouterr().err


def test_represent_on_a_saved_model_dir_with_text_and_data(tmp_path, tiny_data_config, tiny_prepared):
    """--text takes the tokenizer saved beside the model; --data takes a run config's prepared eval split."""
    torch.manual_seed(1)  # represent seeds 0 for untrained:DIR; other weights make the two models differ
    tokenizer = tiny_prepared.tokenizer
    model, _ = build_model(ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=1, seq_len=16), len(tokenizer))
    saved = tmp_path / "mixer"
    model.save_pretrained(saved)
    tokenizer.save_pretrained(saved)
    out = tmp_path / "text"
    argv = [
        "represent",
        str(saved),
        f"untrained:{saved}",
        "--text",
        str(STORIES),
        "--num-texts",
        "2",
        "--steps",
        "150",
        "--protocol",
        "adam",
        "--output-dir",
        str(out),
    ]
    assert main(argv) == 0
    report = json.loads((out / "represent.json").read_text())
    assert report["inputs"] == {
        "text": str(STORIES),
        "tokenizer": str(saved),
        "num_texts": 2,
        "seq_len": 16,
        "num_tokens": 32,
    }
    assert [(m["label"], m["trained"]) for m in report["models"]] == [
        ("mixer (trained)", True),
        ("mixer (untrained)", False),
    ]
    assert report["models"][0]["results"][0]["hamming"] <= 0.1  # the saved weights, the real story tokens: recovered
    run = RunConfig(
        model=ModelSpec(family="mixer", hidden_size=32, num_hidden_layers=1, seq_len=64), data=tiny_data_config
    )
    save_yaml(run, tmp_path / "run.yaml")
    assert (
        main(
            [
                "represent",
                str(tmp_path / "run.yaml"),
                "--data",
                str(tmp_path / "run.yaml"),
                "--num-texts",
                "3",
                "--steps",
                "2",
                "--output-dir",
                str(out),
            ]
        )
        == 0
    )
    inputs = json.loads((out / "represent.json").read_text())["inputs"]
    eval_tokens = sum(sum(mask) for mask in tiny_prepared.eval[:3]["attention_mask"])
    assert inputs["num_texts"] == 3 and inputs["seq_len"] == 64 and inputs["num_tokens"] == eval_tokens


def test_represent_text_needs_a_tokenizer(tmp_path, capsys):
    assert (
        main(
            [
                "represent",
                _yaml(tmp_path, "mixer"),
                "--text",
                str(STORIES),
                "--steps",
                "1",
                "--output-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "--tokenizer" in capsys.readouterr().err
