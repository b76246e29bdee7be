"""What `train` checks about the processes it runs in: the launcher, FSDP, agreement across processes.

accelerate's launcher starts one process per `--num_processes` only through torchrun, which it
picks for `--multi_gpu` (or a config file saying so), or by itself when it sees several GPUs. On a
machine without CUDA, `accelerate launch --num_processes 2` (or `--cpu --num_processes 2`, without
an MPI hostfile) runs its single-process launcher: the script starts once, alone, with the global
batch of one process and half the tokens. That launcher still exports MASTER_ADDR/MASTER_PORT for
the processes it was asked for (accelerate/utils/launch.py, `prepare_simple_launcher_cmd_env`) but
no WORLD_SIZE, which is how `single_process_launch` recognises it.
"""

from __future__ import annotations

import os

import torch

from ..core.errors import UserError
from ..runs.config import TrainConfig

# where accelerate (state.py) and the MPI launchers put the number of processes
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def single_process_launch(environ=os.environ) -> str | None:
    """The warning for a launcher asked for several processes that started this one alone, else None."""
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in environ  # every accelerate launcher exports it
    asked_for_several = "MASTER_ADDR" in environ  # the simple launcher sets it only for num_processes or machines > 1
    if not (launched_by_accelerate and asked_for_several) or any(v in environ for v in WORLD_SIZE_VARIABLES):
        return None
    return (
        "accelerate launch started 1 process, not the several asked for (its single-process launcher: no "
        "--multi_gpu and no CUDA devices); this run trains alone. For N processes on CPU: "
        "accelerate launch --multi_gpu --num_processes N ... or torchrun --nproc_per_node N ..."
    )


def check_fsdp(train: TrainConfig) -> None:
    """Accelerate shards only across accelerator devices; on CPU `fsdp: true` would silently run plain DDP.

    (The sharding itself works on CPU over gloo: tests/test_fsdp.py trains our models through
    accelerate's FSDP2 preparation there; it is Accelerate's choice of distributed type that excludes CPUs.)
    """
    if train.fsdp and not torch.cuda.is_available():
        raise UserError(
            "train.fsdp: FSDP needs CUDA devices; on CPU leave it false (processes then use plain data parallelism)"
        )


def any_process(flag: bool, device) -> bool:
    """Whether `flag` holds on any process (itself when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
