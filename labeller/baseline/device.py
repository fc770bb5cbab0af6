"""The torch device a baseline model runs on: `resolve_device('auto' | 'cpu' | 'cuda')`."""

from __future__ import annotations

import torch

from labeller.core.errors import BadInput


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is BadInput."""
    name = "auto" if device is None else str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(
            "--device", f"'{name}' asked for but no CUDA GPU is available to torch "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise BadInput("--device", f"unknown device '{name}' (expected auto, cpu or cuda)") from None
