"""Which device a merge, a verification or a perplexity runs on: one rule for every caller.

Kept apart from the executor so that verification and scoring, which sit above the engine's events, can ask it
without importing the merge.
"""

from __future__ import annotations

import torch

from tui_merge.errors import BadInputError

__all__ = ["resolve_device"]


def resolve_device(name: str, where: str = "tui_merge.device") -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``; a CUDA device without a GPU is bad input
    (``where`` names the setting in the message)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"{where} {name} was asked for but torch sees no CUDA GPU; use cpu (or auto).")
    return name
