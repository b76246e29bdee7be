"""`--device NAME` -> a torch.device, checked once, with one clear line when the machine lacks it."""

from __future__ import annotations

import torch

from .errors import UserError


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """`auto` (or None): CUDA when available, else MPS, else the CPU; any other name must exist here."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device: {name!r} is not a device (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise UserError(f"--device {name}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device: {name!r} is not supported (auto, cpu, cuda, cuda:N, mps)")
    return device


__all__ = ["resolve_device"]
