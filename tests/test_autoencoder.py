"""Autoencoders: the bottleneck is the only path, they learn, they save, and the metrics count right."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

from masked_mixers import (
    AutoencodingMixer,
    AutoencodingMixerConfig,
    AutoencodingTransformer,
    AutoencodingTransformerConfig,
)
from masked_mixers.core.errors import UserError
from masked_mixers.runs.config import ModelSpec, load_run_config
from masked_mixers.runs.factory import build_model
from masked_mixers.training.metrics import ReconstructionCounts, evaluate_reconstruction, reconstruction_metrics

ROOT = Path(__file__).resolve().parents[1]
VOCAB, D, L = 24, 32, 12


def tiny(kind: str, **overrides):
    torch.manual_seed(0)
    if kind == "mixer":
        config = AutoencodingMixerConfig(vocab_size=VOCAB, hidden_size=D, num_hidden_layers=2, seq_len=L, **overrides)
        return AutoencodingMixer(config).eval()
    config = AutoencodingTransformerConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        intermediate_size=2 * D,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=L,
        **overrides,
    )
    return AutoencodingTransformer(config).eval()


KINDS = ["mixer", "llama"]


def right_padded(batch: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, L), generator=g)
    mask = torch.ones(batch, L, dtype=torch.long)
    mask[0, 7:] = 0
    ids[0, 7:] = 0  # pad id 0
    return ids, mask, ids.masked_fill(mask == 0, -100)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("compression_dim", [None, 8])
def test_decoder_sees_only_the_bottleneck(kind, compression_dim):
    """Hold the bottleneck fixed: any other input (tokens, mask) decodes to the same logits."""
    model = tiny(kind, compression_dim=compression_dim)
    ids_a, mask_a, _ = right_padded(seed=1)
    ids_b, _, _ = right_padded(seed=2)
    with torch.no_grad():
        free_a, free_b = model(ids_a, mask_a).logits, model(ids_b).logits
        assert not torch.allclose(free_a, free_b)  # without holding it, different inputs decode differently
        held = model.encode(ids_a, mask_a)
        hook = model.compress.register_forward_hook(lambda module, args, out: held)
        try:
            patched_b = model(ids_b).logits
        finally:
            hook.remove()
    torch.testing.assert_close(patched_b, free_a)
    torch.testing.assert_close(model.decode(held, L), free_a)


@pytest.mark.parametrize("kind", KINDS)
def test_bottleneck_is_the_last_position_and_encoder_is_causal(kind):
    model = tiny(kind)
    ids = right_padded()[0]
    with torch.no_grad():
        x = model.embed_tokens(ids)
        changed = ids.clone()
        changed[:, 5] = (changed[:, 5] + 1) % VOCAB
        before, after = model.encoder_states(x, None), model.encoder_states(model.embed_tokens(changed), None)
        torch.testing.assert_close(before[:, :5], after[:, :5])  # positions before 5 never read token 5
        assert not torch.allclose(before[:, 5:], after[:, 5:])
        torch.testing.assert_close(model.encode(ids), model.compress(before[:, -1]))


@pytest.mark.parametrize("kind", KINDS)
def test_pads_other_than_the_last_position_do_not_reach_the_bottleneck(kind):
    model = tiny(kind)
    ids, mask, _ = right_padded()
    other = ids.clone()
    other[0, 7:-1] = 5  # different tokens under the mask; the final (bottleneck) position keeps the pad id
    with torch.no_grad():
        torch.testing.assert_close(model.encode(ids, mask), model.encode(other, mask))
        assert not torch.allclose(model.encode(ids), model.encode(other))  # without the mask they would


def test_transformer_mask_is_explicit_so_every_attention_backend_agrees():
    model = tiny("llama")
    ids, mask, _ = right_padded()
    with torch.no_grad():
        sdpa = model(ids, mask).logits
        model.set_attn_implementation("eager")
        eager = model(ids, mask).logits
    torch.testing.assert_close(sdpa, eager)


def test_transformer_decoder_needs_position_embedding_to_tell_positions_apart():
    """Without it every decoder position holds the same vector, so all positions get the same logits."""
    ids = right_padded()[0]
    with torch.no_grad():
        flat = tiny("llama", decoder_position_embedding=False)(ids).logits
        positioned = tiny("llama")(ids).logits
    torch.testing.assert_close(flat, flat[:, :1].expand_as(flat))
    assert not torch.allclose(positioned, positioned[:, :1].expand_as(positioned))


@pytest.mark.parametrize("kind", KINDS)
def test_loss_is_unshifted_cross_entropy_ignoring_pads(kind):
    model = tiny(kind)
    ids, mask, labels = right_padded()
    with torch.no_grad():
        out = model(ids, mask, labels)
        expected = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        summed = model(ids, mask, labels, num_items_in_batch=torch.tensor(100)).loss
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(summed, expected * int((labels != -100).sum()) / 100)
    assert out.logits.shape == (3, L, VOCAB) and out.bottleneck.shape == (3, D)


@pytest.mark.parametrize("kind", KINDS)
def test_tiny_autoencoder_learns_to_reconstruct_a_fixed_set(kind):
    model = tiny(kind).train()
    ids, mask, labels = right_padded(batch=8, seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2 if kind == "mixer" else 3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        model(ids, mask, labels).loss.backward()
        optimizer.step()
    metrics = evaluate_reconstruction(model, [{"input_ids": ids, "attention_mask": mask, "labels": labels}])
    assert metrics["token_accuracy"] > 0.95, metrics


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind, tmp_path):
    model = tiny(kind, compression_dim=8, tie_word_embeddings=True)
    ids, mask, _ = right_padded()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert loaded.lm_head.weight.data_ptr() == loaded.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, mask).logits, model(ids, mask).logits)


@pytest.mark.parametrize("family", ["mixer_autoencoder", "llama_autoencoder"])
def test_factory_builds_autoencoders_and_names_bad_sizes(family):
    model, count = build_model(
        ModelSpec(family=family, hidden_size=32, num_hidden_layers=3, decoder_layers=1, seq_len=16), 40
    )
    assert (model.config.encoder_layers, model.config.decoder_layers) == (3, 1)
    assert len(model.encoder) == 3 and len(model.decoder) == 1 and count.total > 0
    with pytest.raises(UserError, match="compression_dim"):
        build_model(ModelSpec(family=family, hidden_size=32, seq_len=16, compression_dim=64), 40)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("autoencoder-*.yaml")), ids=lambda p: p.name)
def test_autoencoder_configs_load(path):
    run = load_run_config(path)
    assert run.model.family in ("mixer_autoencoder", "llama_autoencoder")
    if "cpu" in path.name:
        model, _ = build_model(run.model, 4096)
        assert model.max_length == run.model.seq_len


def test_metrics_on_hand_made_cases():
    labels = torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100], [-100, -100, -100, -100]])
    predictions = torch.tensor([[1, 2, 3, 9], [4, 0, 7, 7], [1, 1, 1, 1]])
    # tokens: 3/3 + 1/2 scored right; sequences: the first exact, the second not, the third not scored
    assert reconstruction_metrics(predictions, labels) == {"token_accuracy": 4 / 5, "exact_match": 1 / 2}
    logits = F.one_hot(predictions, 10).float()  # logits give the same answer as their argmax
    assert reconstruction_metrics(logits, labels) == {"token_accuracy": 4 / 5, "exact_match": 1 / 2}
    counts = ReconstructionCounts().update(predictions[:1], labels[:1]).update(predictions[1:], labels[1:])
    assert counts.result() == {"token_accuracy": 4 / 5, "exact_match": 1 / 2}
    assert all(v != v for v in reconstruction_metrics(predictions[2:], labels[2:]).values())  # nan: nothing scored
    with pytest.raises(ValueError, match="shape"):
        reconstruction_metrics(predictions[:, :3], labels)
