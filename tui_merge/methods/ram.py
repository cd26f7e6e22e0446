"""RAM: Reinforced Agent Merging. Overlapping changes are averaged, unique ones kept whole."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def _task_vectors(inputs: MergeInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    deltas = torch.stack([tensor - inputs.base for tensor in inputs.tensors]).flatten(1)
    changed = deltas.abs() > inputs.options["epsilon"]
    contributors = changed.sum(dim=0, keepdim=True)
    return deltas * changed, changed, contributors


def ram(inputs: MergeInputs) -> torch.Tensor:
    """Average the changes where several models change a value; keep a lone change as it is."""
    deltas, _, contributors = _task_vectors(inputs)
    merged = (deltas / contributors.clamp(min=1)).sum(dim=0)
    return inputs.base + merged.reshape(inputs.base.shape)


def ramplus_tl(inputs: MergeInputs) -> torch.Tensor:
    """RAM with each model's unique changes boosted by ``1 + r * min(shared/unique, alpha)``."""
    deltas, changed, contributors = _task_vectors(inputs)
    overlap, unique = contributors > 1, contributors == 1
    shared_count = (changed & overlap).sum(dim=1)
    unique_count = (changed & unique).sum(dim=1)
    ratio = shared_count / unique_count.clamp(min=inputs.options["epsilon"])
    boost = 1 + inputs.options["r"] * ratio.clamp(0, inputs.options["alpha"])
    merged = (deltas * unique * boost.unsqueeze(-1) + deltas * overlap / contributors.clamp(min=1)).sum(dim=0)
    return inputs.base + merged.reshape(inputs.base.shape)
