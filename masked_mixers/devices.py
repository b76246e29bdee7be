"""Checking a `--device` option before any work, so a missing accelerator is one line, not a traceback."""

from __future__ import annotations

from .errors import UserError, reason


def check_device(name: str) -> str:
    """`name` if torch can place tensors there (cpu, cuda, cuda:1, mps); otherwise a UserError naming it."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise UserError(f"--device {name!r}: not a device ({reason(err)})") from None
    available = {"cpu": lambda: True, "cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}
    if device.type not in available or not available[device.type]():
        raise UserError(f"--device {name!r}: no such device on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


__all__ = ["check_device"]
