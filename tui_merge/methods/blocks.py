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
