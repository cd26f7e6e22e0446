"""RAM: Reinforced Agent Merging. Overlapping changes are averaged, unique ones kept whole.

``ram`` looks at each position on its own (it is elementwise, so large
tensors merge a block of rows at a time); ``ramplus_tl`` also needs each
model's count of shared and unique changes over the whole tensor, which one
round over the blocks gathers (``RamPlusBlocks``).
"""

from __future__ import annotations

import torch

from tui_merge.methods.blocks import merge_whole
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
    return merge_whole(RamPlusBlocks, inputs)


class RamPlusBlocks:
    """RAM+ by blocks: one round counts each model's shared and unique changes, then blocks merge."""

    passes = 1

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.shared_count = torch.zeros(len(params), dtype=torch.int64)
        self.unique_count = torch.zeros(len(params), dtype=torch.int64)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        _, changed, contributors = _task_vectors(inputs)
        self.shared_count += (changed & (contributors > 1)).sum(dim=1).cpu()
        self.unique_count += (changed & (contributors == 1)).sum(dim=1).cpu()

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        deltas, _, contributors = _task_vectors(inputs)
        overlap, unique = contributors > 1, contributors == 1
        ratio = self.shared_count / self.unique_count.clamp(min=inputs.options["epsilon"])
        boost = (1 + inputs.options["r"] * ratio.clamp(0, inputs.options["alpha"])).to(deltas.device)
        merged = (deltas * unique * boost.unsqueeze(-1) + deltas * overlap / contributors.clamp(min=1)).sum(dim=0)
        return inputs.base + merged.reshape(inputs.base.shape)
