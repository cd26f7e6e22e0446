"""Linear: the weighted average of the models (model soups)."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def linear(inputs: MergeInputs) -> torch.Tensor:
    """``sum(w_i x_i) / sum(w_i)`` with normalize, else ``sum(w_i x_i)``."""
    weights = inputs.per_model("weight")
    # In place: one output-sized buffer however many models (memory stays flat on big embeddings).
    merged = inputs.tensors[0] * weights[0]
    for weight, tensor in zip(weights[1:], inputs.tensors[1:]):
        merged.add_(tensor, alpha=weight)
    total = sum(weights)
    if inputs.options["normalize"] and abs(total) > 1e-8:
        merged.div_(total)
    return merged
