"""`--device NAME` -> a torch.device, checked before any work, with one clear line when the machine lacks it."""

from __future__ import annotations

from .errors import UserError


def _mps_available(torch) -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name=None):
    """`auto` (or None): CUDA when available, else MPS, else the CPU; any other name must exist here."""
    import torch  # lazily: command modules import this before their command runs

    if isinstance(name, torch.device):
        return name
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available(torch) else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UserError(f"--device: {name!r} is not a device (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps" and not _mps_available(torch):
        raise UserError(f"--device {name}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device: {name!r} is not supported (auto, cpu, cuda, cuda:N, mps)")
    return device


def check_device(name):
    """`name` unchanged once `resolve_device` accepts it: for checking options before work starts."""
    resolve_device(name)
    return name


__all__ = ["check_device", "resolve_device"]
