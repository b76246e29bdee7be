"""bench: analytic FLOPs (checked by hand and against PyTorch's own FLOP counter), MFU arithmetic,
and the `bench train` command on a tiny grid."""

import json

import pytest
import torch
from conftest import TRAIN
from torch.utils.flop_counter import FlopCounterMode

from masked_mixers.bench.flops import forward_flops_per_token, mfu
from masked_mixers.bench.timing import mfu_peak
from masked_mixers.cli import main
from masked_mixers.runs.config import ModelSpec
from masked_mixers.runs.factory import build_model


def test_mixer_flops_hand_computed():
    spec = ModelSpec(family="mixer", hidden_size=4, ff_mult=4, num_hidden_layers=1, seq_len=8)
    f = forward_flops_per_token(spec, vocab_size=10)
    # feature mixing 2*(4*16) + 2*(16*4) = 256; mixing (8x8)@(8x4) per sequence = 512, /8 tokens = 64; head 2*4*10 = 80
    assert (f.dense, f.token_mixing, f.attention, f.lm_head) == (256, 64, 0, 80)
    assert f.training == 3 * 400


def test_llama_flops_hand_computed():
    spec = ModelSpec(family="llama", hidden_size=8, num_heads=2, ff_mult=4, num_hidden_layers=2, seq_len=16)
    f = forward_flops_per_token(spec, vocab_size=10)
    # per layer: q,k,v,o 4*2*64 = 512; gate, up, down 3*2*8*32 = 1536; scores + values 2*2*16*8 = 512
    assert (f.dense, f.attention, f.lm_head) == (2 * 2048, 2 * 512, 160)
    assert f.training == 3 * 5280


def test_mfu_peak_is_the_best_probe_or_the_best_model_rate_so_mfu_cannot_exceed_one():
    probes = [{"flops_per_second": 140e9, "n": 1024}, {"flops_per_second": 145e9, "n": 2048}]
    peak = mfu_peak(probes, [100e9, 120e9])
    assert (peak["flops_per_second"], peak["n"], peak["source"]) == (145e9, 2048, "matmul probe")
    # the case: a model counted at 100.6% of a 145 GFLOP/s probe
    peak = mfu_peak(probes, [0.978 * 145e9, 1.006 * 145e9])
    assert peak["flops_per_second"] == 1.006 * 145e9 and peak["source"] == "model FLOP/s above the probe"
    assert max(mfu(1.0, r, peak["flops_per_second"]) for r in (0.978 * 145e9, 1.006 * 145e9)) == 1.0


def test_mfu_arithmetic():
    # 1200 FLOPs/token at 1000 tokens/s is 1.2 MFLOP/s; against a 2.4 MFLOP/s peak that is half
    assert mfu(1200, 1000, 2.4e6) == pytest.approx(0.5)
    assert mfu(3 * 5280, 50, 3 * 5280 * 200) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(family="mixer", mixer_type="flat", hidden_size=16, num_hidden_layers=2, seq_len=12),
        ModelSpec(family="mixer", mixer_type="expanded", hidden_size=16, num_hidden_layers=2, seq_len=12),
        ModelSpec(family="mixer", mixer_type="multihead", hidden_size=16, num_hidden_layers=2, seq_len=12, num_heads=2),
        ModelSpec(family="llama", hidden_size=16, num_hidden_layers=2, seq_len=12, num_heads=2),
    ],
    ids=lambda s: f"{s.family}-{s.mixer_type}",
)
def test_flops_match_pytorch_flop_counter(spec):
    """A real training step counted by torch.utils.flop_counter equals the analytic count."""
    model, _ = build_model(spec, 40)
    if spec.family == "llama":  # the counter does not see inside CPU SDPA kernels; eager attention is plain matmuls
        model.set_attn_implementation("eager")
    batch, tokens = 3, 3 * spec.seq_len
    ids = torch.randint(0, 40, (batch, spec.seq_len))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    expected = forward_flops_per_token(spec, 40).training * tokens
    assert counter.get_total_flops() == expected


def test_bench_train_command_writes_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = [
        "bench",
        "train",
        "--seq-lens",
        "16",
        "--d-models",
        "16",
        "--layers",
        "1",
        "--steps",
        "2",
        "--vocab-size",
        "64",
        "--families",
        "mixer,llama,gpt2",
        "--output",
        str(out),
    ]
    assert main(args + ["--max-memory-gb", "1e-6"]) == 0
    assert all("skipped" in r for r in json.loads(out.read_text())["rows"])
    assert main(args) == 0
    results = json.loads(out.read_text())
    assert {r["family"] for r in results["rows"]} == {"mixer", "llama", "gpt2"}
    for row in results["rows"]:
        assert row["tokens_per_second"] > 0 and 0 < row["mfu"] <= 1 and row["peak_memory_mib"] > 0
        assert row["mfu"] == pytest.approx(
            mfu(
                row["training_flops_per_token"],
                row["tokens_per_second"],
                results["matmul_peak"]["fp32"]["flops_per_second"],
            )
        )
    assert "tokens/s" in capsys.readouterr().out


def test_bench_prepare_compares_with_encode_batch_and_reports_bytes_per_token(tmp_path, capsys):
    corpus = TRAIN
    out = tmp_path / "prepare.json"
    args = [
        "bench",
        "prepare",
        "--source",
        str(corpus),
        "--max-documents",
        "150",
        "--vocab-size",
        "400",
        "--seq-len",
        "64",
        "--packing",
        "--num-proc",
        "1,2",
        "--output",
        str(out),
    ]
    assert main(args) == 0
    results = json.loads(out.read_text())
    encode, *prepared = results["rows"]
    assert encode["contender"] == "encode_batch" and [r["workers"] for r in prepared] == [1, 2]
    assert all(r["tokens"] > 0 and r["tokens_per_second"] > 0 and 1.9 < r["bytes_per_token"] < 2.5 for r in prepared)
    assert prepared[0]["tokens"] == prepared[1]["tokens"]  # the worker count does not change what is stored
    assert results["tokenizer_train_seconds"] > 0 and "bytes/token on disk" in capsys.readouterr().out
