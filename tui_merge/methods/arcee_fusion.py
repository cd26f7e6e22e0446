"""Arcee Fusion: keep only the other model's changes whose importance is an upper outlier.

Importance of a value is ``|other - base|`` times the KL divergence of the
softmaxed rows; the threshold is Tukey's fence ``median + 1.5 IQR``. Quantiles
are exact (mergekit samples a million values at random for large tensors),
so the result does not depend on chance; they are found by a radix select
(``ranking.BlockwiseRankMask``), so a large tensor is merged by blocks of
rows after two counting rounds.
"""

from __future__ import annotations

import torch

from tui_merge.methods import blocks
from tui_merge.methods.blocks import merge_whole
from tui_merge.methods.inputs import MergeInputs
from tui_merge.methods.ranking import BlockwiseRankMask

QUARTILES = (0.25, 0.5, 0.75)


def arcee_fusion(inputs: MergeInputs) -> torch.Tensor:
    """``base + (other - base) * [importance >= median + 1.5 IQR]``."""
    return merge_whole(ArceeFusionBlocks, inputs)


def importance(base: torch.Tensor, other: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``|other - base|`` times the KL divergence of the rows' softmaxes (row by row: blocks need nothing else)."""
    # In place, two temporaries of the block at a time (the same values as p * log(p / q)): peak memory.
    p = torch.softmax(other, dim=-1).add_(eps)
    ratio = torch.softmax(base, dim=-1).add_(eps)
    divergence = torch.div(p, ratio, out=ratio).log_().mul_(p).sum(dim=-1)
    del p, ratio
    # KL is never negative; rounding can give -1e-9 or -0.0, which the radix select could not order.
    divergence = torch.where(divergence > 0, divergence, 0.0)
    return (other - base).abs_() * divergence.unsqueeze(-1)


class ArceeFusionBlocks:
    """Two rounds find the exact quartiles of the importance (sorted index ``int(q (n - 1))``), then blocks merge.

    The importance of each block (a softmax and a logarithm per value) is
    computed once and kept for the second round and the merge when the
    tensor's fit in ``blocks.KEPT_VALUES_BYTES``.
    """

    passes = 2

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.selectors = [BlockwiseRankMask(int(quartile * (count - 1)), count) for quartile in QUARTILES]
        self.threshold: torch.Tensor | None = None
        self.importances = blocks.FirstRoundValues(count, lambda inputs: importance(inputs.base, inputs.tensors[0]))

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        values = self.importances.of(inputs, round_index)
        for selector in self.selectors:
            if round_index == 0:
                selector.count_high(values)
            else:
                selector.count_low(values)

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        base, other = inputs.base, inputs.tensors[0]
        if self.threshold is None:
            q1, median, q3 = (torch.tensor(selector.value_at_rank()) for selector in self.selectors)
            self.threshold = median + 1.5 * (q3 - q1)  # in float32, as the sorted-tensor formula would be
        mask = self.importances.of(inputs, 2, last=True) >= self.threshold.to(base.device)
        return base + (other - base) * mask
