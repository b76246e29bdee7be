"""FSDP on CPU through gloo: 2 processes, a tiny mixer and a tiny Llama sharded the way the Trainer's
`train.fsdp` shards them (tests/fsdp_worker.py), against DDP from the same weights on the same batches."""

from __future__ import annotations

import json
import sys

import pytest
from clirun import run

pytestmark = pytest.mark.slow

LOSS_TOLERANCE = 1e-5  # absolute, per step: the gradients are averaged by a reduce-scatter instead of an all-reduce
WEIGHT_TOLERANCE = 1e-5


def test_fsdp_trains_like_ddp_on_cpu(tmp_path):
    out = tmp_path / "fsdp.json"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run([*torchrun, "tests/fsdp_worker.py", str(out)], tmp_path / "fsdp.log")

    results = json.loads(out.read_text())
    assert sorted(results) == ["llama", "mixer"]
    for family, r in results.items():
        gap = max(abs(a - b) for a, b in zip(r["ddp"], r["fsdp"], strict=True))
        print(
            f"{family}: FSDP vs DDP over {len(r['ddp'])} steps: max |loss difference| {gap:.2e}, "
            f"max |weight difference| {r['max_weight_gap']:.2e}, {r['fsdp_units']} FSDP units"
        )
        assert len(r["ddp"]) == 6 and gap < LOSS_TOLERANCE
        assert r["ddp"][0] != r["ddp"][-1]  # it trained
        # sharded: the layers of the config's transformer_layer_cls_to_wrap, the embedding group and the root
        assert r["fsdp_units"] >= 4 and r["local_share"] == pytest.approx(0.5, abs=0.01)
        # the gathered full state dict (what the Trainer saves) holds every weight, equal to DDP's
        assert r["keys_match"] and r["max_weight_gap"] < WEIGHT_TOLERANCE
