"""Nearswap: move the base toward the other model where the two are already close."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def nearswap(inputs: MergeInputs) -> torch.Tensor:
    """``w = clamp(t / |base - other|, 0, 1)``; result ``w other + (1 - w) base``."""
    base, other = inputs.base, inputs.tensors[0]
    distance = (base - other).abs()
    # Where the models agree exactly the weight is irrelevant; 1 avoids 0/0.
    weight = torch.where(distance > 0, (inputs.options["t"] / distance).clamp(0, 1), torch.ones_like(distance))
    return weight * other + (1 - weight) * base
