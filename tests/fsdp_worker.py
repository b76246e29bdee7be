"""Run by tests/test_fsdp.py under torchrun (2 processes, gloo on CPU): one tiny model of each family
trained twice from the same weights on the same batches, with DDP and with FSDP2 as accelerate prepares
it for the Trainer's `train.fsdp` (the plugin from our TrainingArguments' fsdp_plugin_args, then
accelerate's own `fsdp2_prepare_model`: the wrapping policy, the tied-embedding group, the root).
Process 0 writes the per-step losses and the gap between the two runs' saved weights to argv[1] as JSON.

Accelerate picks FSDP only for accelerator devices (its state.py: MULTI_CPU never becomes FSDP), so the
Trainer itself cannot run FSDP here; the plugin is handed to a CPU Accelerator's state directly.
"""

from __future__ import annotations

import json
import sys
import tempfile

import torch
import torch.distributed as dist
from accelerate import Accelerator
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_model
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel

from masked_mixers.runs.config import ModelSpec, RunConfig, TrainConfig
from masked_mixers.runs.factory import build_model
from masked_mixers.training.train import training_arguments

STEPS, BATCH, VOCAB, LR, CLIP = 6, 4, 512, 0.005, 1.0
LAYER = {"mixer": "MixerBlock", "llama": "LlamaDecoderLayer"}  # the config's transformer_layer_cls_to_wrap


def run_config(family: str, output_dir: str) -> RunConfig:
    spec = ModelSpec(family=family, hidden_size=32, num_hidden_layers=2, seq_len=32, num_heads=4)
    fsdp_config = {"fsdp_version": 2, "transformer_layer_cls_to_wrap": [LAYER[family]]}
    return RunConfig(model=spec, train=TrainConfig(output_dir=output_dir, fsdp=True, fsdp_config=fsdp_config))


def batches(seq_len: int) -> torch.Tensor:
    """This process's share of each step's global batch: (steps, batch, L) token ids."""
    rank, world = dist.get_rank(), dist.get_world_size()
    ids = torch.randint(0, VOCAB, (STEPS, world * BATCH, seq_len), generator=torch.Generator().manual_seed(0))
    return ids[:, rank * BATCH : (rank + 1) * BATCH]


def fresh_model(run: RunConfig):
    torch.manual_seed(0)  # the same initial weights in every process and for both wrappings
    return build_model(run.model, VOCAB)[0]


def train_steps(model, data: torch.Tensor) -> list[float]:
    """AdamW with gradient clipping, as the Trainer steps; the loss of each step averaged over the processes."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    losses = []
    for ids in data:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad()
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        losses.append(mean.item() / dist.get_world_size())
    return losses


def local_share(model) -> float:
    """The share of the parameters this process holds (1 / processes when every one is sharded)."""
    local = sum(p.to_local().numel() if isinstance(p, DTensor) else p.numel() for p in model.parameters())
    return local / sum(p.numel() for p in model.parameters())


def compare(family: str, output_dir: str) -> dict:
    run = run_config(family, output_dir)
    plugin = FullyShardedDataParallelPlugin(**training_arguments(run, has_eval=False).fsdp_plugin_args)
    accelerator = Accelerator()  # under torchrun on CPU: MULTI_CPU over gloo (after TrainingArguments, which resets it)
    data = batches(run.model.seq_len)

    ddp = DistributedDataParallel(fresh_model(run))
    ddp_losses = train_steps(ddp, data)
    ddp_weights = ddp.module.state_dict()

    accelerator.state.fsdp_plugin = plugin
    sharded = fsdp2_prepare_model(accelerator, fresh_model(run))
    fsdp_losses = train_steps(sharded, data)
    # what the Trainer saves under FULL_STATE_DICT: gathered, on process 0's CPU (the model's state_dict hooks run)
    saved = get_model_state_dict(sharded, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if dist.get_rank() != 0:
        return {}
    return {
        "ddp": ddp_losses,
        "fsdp": fsdp_losses,
        "keys_match": sorted(saved) == sorted(ddp_weights),
        "max_weight_gap": max((saved[k] - ddp_weights[k]).abs().max().item() for k in ddp_weights),
        "fsdp_units": sum(1 for m in sharded.modules() if isinstance(m, FSDPModule)),
        "local_share": local_share(sharded),
    }


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        results = {family: compare(family, folder) for family in LAYER}
    if dist.get_rank() == 0:
        with open(out, "w") as f:
            json.dump(results, f)
    dist.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
