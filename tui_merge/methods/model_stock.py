"""Model Stock: interpolate between the base and the models' average by the angle of their task vectors."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def model_stock(inputs: MergeInputs) -> torch.Tensor:
    """``t = N cos / (1 + (N - 1) cos)`` from the mean pairwise cosine; ``t avg + (1 - t) base``."""
    base, models = inputs.base, inputs.tensors
    shape = base.shape
    if inputs.options["filter_wise"]:
        rows = base.reshape(1, -1) if base.dim() < 2 else base.reshape(shape[0], -1)
        flat = [model.reshape(rows.shape) for model in models]
    else:
        rows = base.reshape(-1)
        flat = [model.reshape(-1) for model in models]
    offsets = [model - rows for model in flat]
    cosines = []
    for i, first in enumerate(offsets):
        for second in offsets[i + 1 :]:
            norms = first.norm(dim=-1) * second.norm(dim=-1)
            cosines.append(((first * second).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cosine = torch.stack(cosines).mean(dim=0).unsqueeze(-1)
    count = len(models)
    t = count * cosine / (1 + (count - 1) * cosine)
    average = sum(flat) / count
    return (t * average + (1 - t) * rows).reshape(shape)
