"""Linear: the weighted average of the models (model soups)."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def linear(inputs: MergeInputs) -> torch.Tensor:
    """``sum(w_i x_i) / sum(w_i)`` with normalize, else ``sum(w_i x_i)``."""
    weights = inputs.per_model("weight")
    merged = sum(weight * tensor for weight, tensor in zip(weights, inputs.tensors))
    total = sum(weights)
    if inputs.options["normalize"] and abs(total) > 1e-8:
        merged = merged / total
    return merged
