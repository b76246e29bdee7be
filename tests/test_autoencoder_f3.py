"""F3's three comparisons: the protocol's transformer decoder is constant over positions (findings.md F3
"Caveat"), the decoder-positions variant is not, and the memory-matched mixer has twice the depth; the
finding reports the protocol, the variant and the memory-matched rows."""

from __future__ import annotations

import pytest
import torch

from masked_mixers.reproduce.context import Context
from masked_mixers.reproduce.f3_autoencoders import DEEP_MIXER, MIXER, POSITIONED, SIDES, TRANSFORMER, checks, specs
from masked_mixers.reproduce.scales import SCALES
from masked_mixers.runs.factory import build_model

VOCAB = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    ctx = Context(scale=SCALES["tiny"], output_dir=tmp_path_factory.mktemp("f3"))
    built = {}
    for spec in specs(ctx):
        torch.manual_seed(0)
        built[spec.name] = build_model(spec, vocab_size=VOCAB)[0].eval()
    return ctx, built


def test_f3_builds_protocol_variant_and_memory_matched_models(models):
    ctx, built = models
    assert tuple(built) == SIDES
    depth = ctx.scale.autoencoder_layers or ctx.scale.layers
    assert not built[TRANSFORMER].config.decoder_position_embedding  # the paper's transformer autoencoder
    assert built[POSITIONED].config.decoder_position_embedding  # the variant
    for name, layers in ((MIXER, depth), (TRANSFORMER, depth), (POSITIONED, depth), (DEEP_MIXER, 2 * depth)):
        config = built[name].config
        assert (config.encoder_layers, config.decoder_layers, config.hidden_size) == (layers, layers, ctx.scale.d_model)


def test_protocol_transformer_decoder_is_constant_over_positions_and_the_variant_is_not(models):
    ctx, built = models
    ids = torch.randint(VOCAB, (3, ctx.scale.seq_len), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        protocol = built[TRANSFORMER](ids).logits  # (b, L, vocab)
        variant = built[POSITIONED](ids).logits
        mixer = built[MIXER](ids).logits
    torch.testing.assert_close(protocol, protocol[:, :1].expand_as(protocol))  # one distribution per document
    for logits in (variant, mixer):
        spread = (logits - logits[:, :1]).abs().amax()
        assert spread > 1e-3 * logits.abs().amax()  # positions differ (far above rounding)


def test_f3_reports_protocol_variant_and_memory_matched_checks():
    loss = {MIXER: [4.0, 4.1, 4.0], TRANSFORMER: [5.0, 5.1, 5.0], POSITIONED: [3.0, 3.1, 3.0], DEEP_MIXER: [2.0] * 3}
    protocol, variant, matched = checks(loss, depth=4)
    assert not protocol.variant and set(protocol.measured) == {MIXER, TRANSFORMER}
    assert "protocol" in protocol.claim
    assert variant.variant and set(variant.measured) == {MIXER, POSITIONED} and "positions" in variant.claim
    assert not matched.variant and set(matched.measured) == {DEEP_MIXER, TRANSFORMER} and "8+8" in matched.claim
    assert protocol.verdict != variant.verdict  # the variant can overturn the protocol's verdict; it is reported apart
