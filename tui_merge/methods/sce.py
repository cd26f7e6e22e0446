"""SCE (select, calculate, erase), from FuseChat: variance-selected, energy-weighted, sign-elected."""

from __future__ import annotations

import torch

from tui_merge.methods.blocks import merge_whole
from tui_merge.methods.inputs import MergeInputs
from tui_merge.methods.ranking import BlockwiseRankMask


def sce(inputs: MergeInputs) -> torch.Tensor:
    """Keep the ``select_topk`` highest-variance positions, weight by mean square, elect signs."""
    return merge_whole(SceBlocks, inputs)


class SceBlocks:
    """SCE by blocks.

    With ``select_topk`` below 1, two rounds radix-select the variance
    threshold (``ranking.BlockwiseRankMask``; equal variances are kept in
    index order, where mergekit's ``topk`` leaves the choice to the
    library) and a third sums each model's energy (the mean square of its
    kept task vector, in float64); with ``select_topk`` 1 only the energy
    round runs. Then every block is merged as the whole tensor would be.
    """

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.select, self.count = options["select_topk"], count
        self.passes = 3 if self.select < 1 else 1
        self.selector = BlockwiseRankMask(0, count)  # its rank is known after the first round
        self.nonzero = 0
        self.energy = torch.zeros(len(params), dtype=torch.float64)
        self.merging = False

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        deltas = _task_vectors(inputs)
        if self.passes == 3 and round_index < 2:
            variance = _variance(deltas)
            if round_index == 0:
                self.selector.count_high(variance)
                self.nonzero += int(torch.count_nonzero(variance))
                self.selector.rank = self.count - int(self.select * self.nonzero)
            elif not self.selector.trivial:
                self.selector.count_low(variance)
            return
        kept = self._selected(deltas)
        self.energy += kept.flatten(1).double().pow_(2).sum(dim=1).cpu()

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        if not self.merging:
            self.selector.rewind()
            self.merging = True
        base = inputs.base
        deltas = self._selected(_task_vectors(inputs))
        energy = self.energy / self.count
        total = float(energy.sum())
        weights = energy / total if total > 0 else torch.full_like(energy, 1 / len(energy))
        weights = weights.float().to(base.device).view(-1, *([1] * base.dim()))
        elected = torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0)
        kept_weights = weights * (deltas.sign() == elected)
        divisor = kept_weights.sum(dim=0)
        divisor = torch.where(divisor == 0, torch.ones_like(divisor), divisor)
        return base + (deltas * kept_weights).sum(dim=0) / divisor

    def _selected(self, deltas: torch.Tensor) -> torch.Tensor:
        if self.passes == 3:
            deltas.mul_(self.selector.mask(_variance(deltas)))
        return deltas


def _task_vectors(inputs: MergeInputs) -> torch.Tensor:
    return torch.stack([tensor - inputs.base for tensor in inputs.tensors])


def _variance(deltas: torch.Tensor) -> torch.Tensor:
    """The population variance over the models at each position.

    Written out: ``Tensor.var`` over the leading dimension is about ten
    times slower than these three passes.
    """
    deviations = deltas - deltas.mean(dim=0)
    return deviations.pow_(2).mean(dim=0)
