"""Merging a large tensor a block of rows at a time, for methods that need statistics of the whole tensor.

A block merger sees the tensor twice or more: first ``passes`` rounds of
``observe`` over every block (gathering what the method needs of the whole
tensor: norms and dot products for slerp, magnitude thresholds for TIES),
then ``merge`` on every block,
which must give exactly the rows that merging the whole tensor would. The
executor reads each block from its byte range, so memory holds one block
per input, not the tensor. A method whose merger depends on an option
(row-local settings need no pass) sets ``passes`` per instance.

Most of these methods' whole-tensor kernels are the merger run on one block
(``merge_whole``), so the two paths cannot drift apart; they differ only in
the order of float64 sums.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from tui_merge.methods.inputs import MergeInputs

KEPT_VALUES_BYTES = 256 << 20
"""A block merger may keep what its first round computed of every block (random draws, importance scores) for
its later rounds and the merge when those values fit in this many bytes of float32, instead of computing them
again; the values are the same either way."""


class BlockMerger(Protocol):
    """What the executor calls; one instance per output tensor."""

    passes: int
    """Rounds of ``observe`` over all blocks before the first ``merge``."""

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        """For one tensor of ``count`` values, with its global and per-model parameters."""

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        """Take note of one block's inputs in observation round ``round_index``."""

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        """The merged rows of one block."""


def merge_whole(merger_class: type, inputs: MergeInputs) -> torch.Tensor:
    """Merge a whole tensor with a block merger: every round on the tensor as one block."""
    reference = inputs.base if inputs.base is not None else inputs.tensors[0]
    merger = merger_class(inputs.options, inputs.params, reference.numel())
    for round_index in range(merger.passes):
        merger.observe(inputs, round_index)
    return merger.merge(inputs)


class FirstRoundValues:
    """What a block merger computes from each block in its first round (importance, variance), kept in block
    order for its later rounds and the merge when the tensor's fit in ``KEPT_VALUES_BYTES`` of float32, else
    computed again from the block; the values are the same either way."""

    def __init__(self, count: int, compute: Callable[[MergeInputs], torch.Tensor]) -> None:
        self.compute = compute
        self.kept: list[torch.Tensor | None] | None = [] if count * 4 <= KEPT_VALUES_BYTES else None
        self.stage, self.cursor = 0, 0

    def of(self, inputs: MergeInputs, stage: int, last: bool = False) -> torch.Tensor:
        """The block's values in round ``stage`` (0: computed and kept; later rounds read them back, blocks in
        order); ``last`` lets them go (the merge is their last use)."""
        if self.kept is None:
            return self.compute(inputs)
        if stage == 0:
            self.kept.append(self.compute(inputs))
            return self.kept[-1]
        if stage != self.stage:
            self.stage, self.cursor = stage, 0
        values = self.kept[self.cursor]
        if last:
            self.kept[self.cursor] = None
        self.cursor += 1
        return values
