"""Model Stock: interpolate between the base and the models' average by the angle of their task vectors."""

from __future__ import annotations

import torch

from tui_merge.methods.blocks import merge_whole
from tui_merge.methods.inputs import MergeInputs
from tui_merge.methods.products import gram


def model_stock(inputs: MergeInputs) -> torch.Tensor:
    """``t = N cos / (1 + (N - 1) cos)`` from the mean pairwise cosine; ``t avg + (1 - t) base``."""
    return merge_whole(ModelStockBlocks, inputs)


class ModelStockBlocks:
    """Model stock by blocks: one round sums the Gram matrix of the task vectors (per tensor), or none per row.

    With ``filter_wise`` each row has its own ratio from its own cosines, so
    a block of rows needs nothing from the others.
    """

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.filter_wise = options["filter_wise"]
        self.passes = 0 if self.filter_wise else 1
        self.products = torch.zeros(len(params), len(params), dtype=torch.float64)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        self.products += gram([tensor - inputs.base for tensor in inputs.tensors])

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        if self.filter_wise:
            return _filter_wise(inputs)
        t = interpolation_ratio(self.products)
        average = _average(inputs.tensors)
        return average.mul_(t).add_(inputs.base, alpha=1 - t)


def interpolation_ratio(products: torch.Tensor) -> float:
    """``N cos / (1 + (N - 1) cos)`` with ``cos`` the mean cosine over all pairs of task vectors."""
    count = products.shape[0]
    norms = products.diagonal().clamp(min=0).sqrt()
    cosines = [
        float((products[i, j] / (norms[i] * norms[j]).clamp(min=1e-6)).clamp(-1, 1))
        for i in range(count)
        for j in range(i + 1, count)
    ]
    cosine = sum(cosines) / len(cosines)
    return count * cosine / (1 + (count - 1) * cosine)


def _average(tensors: list[torch.Tensor]) -> torch.Tensor:
    total = tensors[0].clone()
    for tensor in tensors[1:]:
        total.add_(tensor)
    return total.div_(len(tensors))


def _filter_wise(inputs: MergeInputs) -> torch.Tensor:
    base, models = inputs.base, inputs.tensors
    shape = base.shape
    rows = base.reshape(1, -1) if base.dim() < 2 else base.reshape(shape[0], -1)
    offsets = [model.reshape(rows.shape) - rows for model in models]
    cosines = []
    for i, first in enumerate(offsets):
        for second in offsets[i + 1 :]:
            norms = first.norm(dim=-1) * second.norm(dim=-1)
            cosines.append(((first * second).sum(dim=-1) / norms.clamp(min=1e-6)).clamp(-1, 1))
    cosine = torch.stack(cosines).mean(dim=0).unsqueeze(-1)
    count = len(models)
    t = count * cosine / (1 + (count - 1) * cosine)
    average = _average([model.reshape(rows.shape) for model in models])
    return (t * average + (1 - t) * rows).reshape(shape)
