"""Circuit: a priority-ordered DELLA variant (from the Circuit-Merge tool).

Models are listed highest priority first. Each model's task vector has its
changes below ``meaningful_change_threshold`` zeroed, then is pruned with a
drop rate ``calculate_p`` that is lowest for the highest-priority model, the
rate spread by ``epsilon`` so larger changes survive more often. Models are
then folded in from lowest to highest priority: a value's first change is
taken as it is; a later change of the opposite sign replaces it (higher
priority wins); a later change of the same sign is averaged with it, halving
the earlier ones at temperature 0 and as a plain running mean at temperature 1.

Each model draws its drops from its own generator (seeded from the
tensor's seed and the model's place), so a large tensor merged a block of
rows at a time draws exactly what it would whole.
"""

from __future__ import annotations

import math

import torch

from tui_merge.methods import draws
from tui_merge.methods.blocks import merge_whole
from tui_merge.methods.inputs import MergeInputs


def calculate_p(i: int, count: int, temperature: float, base_droprate: float) -> float:
    """Drop rate of the i-th model counted from the lowest priority (1) to the highest (count)."""
    if count == 1:
        return base_droprate * 2
    i = max(i, 2)
    keep = 0.5 ** (count - i + 1) * (1 - base_droprate) * 2
    keep = (1 - temperature) * keep + temperature * (1 - base_droprate)
    return 1.0 - keep


def prune(
    delta: torch.Tensor,
    p: float,
    epsilon: float,
    generator: torch.Generator,
    rescale: bool,
    magnitude_range: tuple[float, float] | None = None,
    in_place: bool = False,
) -> torch.Tensor:
    """Drop values with probability ``p - epsilon/2`` (largest) to ``p + epsilon/2`` (smallest).

    ``magnitude_range`` is the smallest and largest magnitude of the whole
    task vector, when ``delta`` is one block of it; ``in_place`` prunes
    ``delta`` itself (a caller's own temporary) instead of a copy.
    """
    # Written in place, one temporary at a time: this runs on every value of every variant.
    magnitude = delta.abs()
    low, high = magnitude_range or (float(magnitude.min()), float(magnitude.max()))
    # Smallness first: 1 for the smallest change, 0 for the largest.
    drop = magnitude.sub_(low).div_(high - low).neg_().add_(1) if high > low else magnitude.fill_(0.5)
    drop.mul_(epsilon).add_(p - epsilon / 2)
    dropped = draws.below(delta.shape, drop, generator, delta.device).bool()
    pruned = delta if in_place else delta.clone()
    if rescale:
        pruned.div_(drop.neg_().add_(1))  # 1 - drop; dropped values (drop may be 1) are overwritten below
    return pruned.masked_fill_(dropped, 0.0)


def circuit(inputs: MergeInputs) -> torch.Tensor:
    """Fold the pruned task vectors from lowest to highest priority into the base."""
    return merge_whole(CircuitBlocks, inputs)


class CircuitBlocks:
    """Circuit by blocks: one round finds each task vector's magnitude range, then blocks fold as a whole would.

    Each model draws from its own generator in row order, so the drops of
    a block are those of the whole tensor.
    """

    passes = 1

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.options = options
        self.ranges = [(math.inf, -math.inf)] * len(params)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        threshold = self.options["meaningful_change_threshold"]
        for index, tensor in enumerate(inputs.tensors):
            low, high = (float(value) for value in torch.aminmax(tensor.sub(inputs.base).abs_()))
            # The range of the thresholded task vector: a change below the threshold counts as a zero.
            low, high = (0.0 if low < threshold else low), (0.0 if high < threshold else high)
            known_low, known_high = self.ranges[index]
            self.ranges[index] = (min(known_low, low), max(known_high, high))

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        options = self.options
        temperature = options["temperature"]
        count = len(inputs.tensors)
        accumulated = contributions = None
        for i in range(1, count + 1):  # from the lowest priority, the last model, to the highest
            index = count - i
            delta = self._task_vector(inputs, index)
            p = calculate_p(i, count, temperature, options["base_droprate"])
            if p != 0.0:
                delta = prune(
                    delta, p, options["epsilon"], inputs.generator_for(index), not options["skip_rescaling"],
                    self.ranges[index], in_place=True,
                )  # fmt: skip
            if accumulated is None:  # the first model's changes are all taken as they are
                accumulated, contributions = delta, (delta != 0).float()
                continue
            # A value taken so far is never 0, so where nothing was taken yet the signs differ: a first
            # change and a change of the other sign are both taken as they are; a change of the same sign blends.
            same_sign = torch.eq(accumulated.sign(), delta.sign())
            present = delta != 0
            agree = present & same_sign
            take = present.logical_and_(same_sign.logical_not_())
            accumulated = torch.where(
                take, delta, torch.where(agree, self._blend(accumulated, delta, contributions), accumulated)
            )
            contributions.add_(agree).masked_fill_(take, 1.0)
        return inputs.base + accumulated

    def _blend(self, accumulated: torch.Tensor, delta: torch.Tensor, contributions: torch.Tensor) -> torch.Tensor:
        """A same-sign change folded in: halving at temperature 0, the running mean at 1, a mix between
        (the two ends computed alone give the same values)."""
        temperature = self.options["temperature"]
        halved = (accumulated + delta).div_(2) if temperature != 1 else None
        running = (accumulated * contributions).add_(delta).div_(contributions + 1) if temperature != 0 else None
        if running is None:
            return halved
        if halved is None:
            return running
        return halved.mul_(1 - temperature).add_(running.mul_(temperature))

    def _task_vector(self, inputs: MergeInputs, index: int) -> torch.Tensor:
        delta = inputs.tensors[index] - inputs.base
        return delta.masked_fill_(delta.abs() < self.options["meaningful_change_threshold"], 0.0)
