"""SCE (select, calculate, erase), from FuseChat: variance-selected, energy-weighted, sign-elected."""

from __future__ import annotations

import torch

from tui_merge.methods import blocks
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

    The variance over the models is that of the models themselves (the
    base cancels), so the counting rounds need no task vectors. When the
    tensor's variances fit in ``blocks.KEPT_VALUES_BYTES`` each block's is
    computed once and kept (``blocks.FirstRoundValues``) for the other
    rounds and the merge, instead of four times (the merge was
    compute-bound on two cores).
    """

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.select, self.count = options["select_topk"], count
        self.passes = 3 if self.select < 1 else 1
        self.selector = BlockwiseRankMask(0, count)  # its rank is known after the first round
        self.nonzero = 0
        self.energy = torch.zeros(len(params), dtype=torch.float64)
        self.variances = blocks.FirstRoundValues(count, lambda inputs: _variance(inputs.tensors))
        self.merging = False

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        if self.passes == 3 and round_index < 2:
            variance = self.variances.of(inputs, round_index)
            if round_index == 0:
                self.selector.count_high(variance)
                self.nonzero += int(torch.count_nonzero(variance))
                self.selector.rank = self.count - int(self.select * self.nonzero)
            elif not self.selector.trivial:
                self.selector.count_low(variance)
            return
        mask = self.selector.mask(self.variances.of(inputs, 2)) if self.passes == 3 else None
        for model, tensor in enumerate(inputs.tensors):
            delta = tensor - inputs.base
            if mask is not None:
                delta *= mask
            self.energy[model] += float(delta.pow_(2).sum(dtype=torch.float64))

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        base = inputs.base
        deltas = [tensor - base for tensor in inputs.tensors]
        if self.passes == 3:
            if not self.merging:
                self.selector.rewind()  # its mask round starts again from the first block
                self.merging = True
            mask = self.selector.mask(self.variances.of(inputs, 3, last=True))
            for delta in deltas:
                delta.mul_(mask)
        energy = self.energy / self.count
        total = float(energy.sum())
        weights = (energy / total if total > 0 else torch.full_like(energy, 1 / len(energy))).float().tolist()
        # The elected sign (+1 where the kept deltas sum to >= 0), then per model in place: a delta agrees where
        # its product with that sign is positive (so a zero never does).
        elected = deltas[0].clone()
        for delta in deltas[1:]:
            elected.add_(delta)
        elected.ge_(0).mul_(2).sub_(1)
        numerator, divisor = torch.zeros_like(base), torch.zeros_like(base)
        for weight, delta in zip(weights, deltas):
            agrees = torch.mul(delta, elected).gt_(0)
            numerator.add_(delta.mul_(agrees), alpha=weight)
            divisor.add_(agrees, alpha=weight)
        divisor.masked_fill_(divisor == 0, 1.0)
        return numerator.div_(divisor).add_(base)


def _variance(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The population variance over the models at each position (equal to their task vectors' variance).

    Written out: ``Tensor.var`` over the leading dimension is about ten
    times slower; for two models it is a single square of half their
    difference.
    """
    if len(tensors) == 2:
        return tensors[0].sub(tensors[1]).mul_(0.5).pow_(2)
    # Differences from the first model: as exact as task vectors (bf16 neighbours subtract exactly in float32).
    stacked = torch.stack([tensor - tensors[0] for tensor in tensors])
    deviations = stacked - stacked.mean(dim=0)
    return deviations.pow_(2).mean(dim=0)
