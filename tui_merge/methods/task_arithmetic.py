"""Task arithmetic and its sparsified descendants: TIES, DARE, breadcrumbs, DELLA.

All of them compute task vectors ``d_i = x_i - base``, optionally sparsify each,
weight them, optionally elect a sign per value (TIES: the sign of the weighted
sum; with ``consensus_method: count``, mergekit 0.0.2's, the sign most models'
values have; values of the other sign, and zeros, are left out), combine, and add
``lambda`` times the result to the base. With ``normalize`` the combination is
divided by the sum of the weights that contributed at each position.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import torch

from tui_merge.methods import blocks, pool, sparsify
from tui_merge.methods.inputs import MergeInputs
from tui_merge.methods.ranking import RankWindow

Sparsifier = Callable[[torch.Tensor, dict[str, Any], MergeInputs, int], torch.Tensor]
"""``(task vector, the model's parameters, the inputs, the model's index) -> sparsified task vector``."""


def combine(
    inputs: MergeInputs,
    sparsifier: Sparsifier | None,
    elect_sign: bool,
    sparsified: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The shared pipeline: task vectors, sparsify, weight, (elect signs), combine, add to base.

    ``sparsified`` gives the models' task vectors already sparsified (a
    block merger that kept them from its first round), which are then
    weighted in place. Written with in-place updates so that a merge of k
    models holds about k + 3 tensors of the output's size at its peak, not
    several stacks of k.
    """
    base = inputs.base
    weights = inputs.per_model("weight")

    def task_vector(index: int) -> torch.Tensor:
        delta = inputs.tensors[index] - base
        if sparsifier:
            delta = sparsifier(delta, inputs.params[index], inputs, index)
        return delta.mul_(weights[index])

    if sparsified is not None:
        weighted = [delta.mul_(weight) for delta, weight in zip(sparsified, weights)]
    elif sparsifier:
        weighted = for_each_model(inputs, task_vector)
    else:
        weighted = [task_vector(index) for index in range(len(weights))]
    if not elect_sign:
        mixed = torch.zeros_like(base)
        for delta in weighted:
            mixed.add_(delta)
        del weighted
        total = float(sum(weights))
        return _finished(mixed, total if abs(total) >= 1e-8 else 1.0, base, inputs.options)
    if base.numel() < PARALLEL_VALUES or base.device.type != "cpu" or pool.POOL_THREADS < 2:
        return _elected(weighted, weights, base, inputs.options)
    # Every value is elected on its own: parts of the flattened tensors run on a core each, with the same bytes.
    flat = [delta.reshape(-1) for delta in weighted]
    base_flat = base.reshape(-1)
    del weighted
    bounds = torch.linspace(0, base_flat.numel(), pool.POOL_THREADS + 1).long().tolist()

    def part(index: int) -> torch.Tensor:
        start, stop = bounds[index], bounds[index + 1]
        return _elected([delta[start:stop] for delta in flat], weights, base_flat[start:stop], inputs.options)

    return torch.cat(list(pool.method_pool().map(part, range(len(bounds) - 1)))).view(base.shape)


PARALLEL_VALUES = 1 << 16
"""From this many values on, a CPU tensor's sign election is split between the pool's threads."""


def _elected(weighted: list[torch.Tensor], weights: list[float], base: torch.Tensor, options: dict) -> torch.Tensor:
    """TIES's mix: a sign elected per value, the weighted values of that sign averaged, added to the base.

    Float masks throughout: torch's float-by-bool arithmetic is several times slower.
    """
    mixed = torch.zeros_like(base)
    by_count = options.get("consensus_method", "sum") == "count"
    for delta in weighted:
        mixed.add_(delta.sign() if by_count else delta)
    sign = mixed.ge_(0).mul_(2).sub_(1)  # the elected sign, of the weighted sum (or count): +1 on a tie
    mixed = torch.zeros_like(base)
    divisor = torch.zeros_like(base)
    for delta, weight in zip(weighted, weights):
        agreeing = delta.mul_(sign).clamp_(min=0)  # |value| where it has the elected sign, else 0 (zeros too)
        mixed.add_(agreeing)
        divisor.add_(agreeing.sign_(), alpha=weight)  # the weights of the values that agree
    mixed.mul_(sign)  # negation is exact: the sum of |values| negated is the sum of the negative values
    del sign
    divisor.add_(divisor.eq(0).float())  # 1 where nothing agreed (and the sum is 0)
    return _finished(mixed, divisor, base, options)


def _finished(mixed: torch.Tensor, divisor: torch.Tensor | float, base: torch.Tensor, options: dict) -> torch.Tensor:
    """``base + lambda * mixed``, the mix divided by ``divisor`` first with ``normalize``."""
    if options["normalize"]:
        mixed.div_(divisor)
    return mixed.mul_(options["lambda"]).add_(base)


def for_each_model(inputs: MergeInputs, function: Callable[[int], Any]) -> list[Any]:
    """``function(index)`` for every model's index, in order, on a thread each where that cannot change a byte.

    Each model with its own generator (or none) draws and returns its own
    result, so the bytes do not depend on the threads; the radix sorts and
    random draws that dominate sparsifying then run on a core each. Models
    drawing from one shared generator must draw in model order, so they run
    in turn.
    """
    indices = range(len(inputs.tensors))
    shared_draws = inputs.generator is not None and not inputs.generators
    if len(indices) > 1 and not shared_draws:
        return list(pool.method_pool().map(function, indices))
    return [function(index) for index in indices]


def _largest(delta: torch.Tensor, params: dict[str, Any], inputs: MergeInputs, index: int) -> torch.Tensor:
    return sparsify.keep_largest(delta, params["density"], inputs.options.get("rescale", False))


def _random(delta: torch.Tensor, params: dict[str, Any], inputs: MergeInputs, index: int) -> torch.Tensor:
    return sparsify.drop_random(delta, params["density"], inputs.generator_for(index), inputs.options["rescale"])


def _middle(delta: torch.Tensor, params: dict[str, Any], inputs: MergeInputs, index: int) -> torch.Tensor:
    return sparsify.keep_middle(delta, params["density"], params["gamma"], inputs.options["rescale"])


def _magprune(delta: torch.Tensor, params: dict[str, Any], inputs: MergeInputs, index: int) -> torch.Tensor:
    return sparsify.magnitude_prune(
        delta, params["density"], params["epsilon"], inputs.generator_for(index), inputs.options["rescale"]
    )


def task_arithmetic(inputs: MergeInputs) -> torch.Tensor:
    """``base + lambda * sum(w_i d_i)``."""
    return combine(inputs, None, elect_sign=False)


def ties(inputs: MergeInputs) -> torch.Tensor:
    """Trim to the largest values, elect signs, average what agrees."""
    return combine(inputs, _largest, elect_sign=True)


def dare_ties(inputs: MergeInputs) -> torch.Tensor:
    """Random drop and rescale, then TIES sign election."""
    return combine(inputs, _random, elect_sign=True)


def dare_linear(inputs: MergeInputs) -> torch.Tensor:
    """Random drop and rescale, then a weighted sum."""
    return combine(inputs, _random, elect_sign=False)


def breadcrumbs(inputs: MergeInputs) -> torch.Tensor:
    """Drop the largest and smallest values, then a weighted sum."""
    return combine(inputs, _middle, elect_sign=False)


def breadcrumbs_ties(inputs: MergeInputs) -> torch.Tensor:
    """Breadcrumbs pruning with TIES sign election."""
    return combine(inputs, _middle, elect_sign=True)


def della(inputs: MergeInputs) -> torch.Tensor:
    """MAGPRUNE and rescale, then TIES sign election."""
    return combine(inputs, _magprune, elect_sign=True)


def della_linear(inputs: MergeInputs) -> torch.Tensor:
    """MAGPRUNE and rescale, then a weighted sum."""
    return combine(inputs, _magprune, elect_sign=False)


class RandomDropBlocks:
    """DARE by blocks (DELLA in ``DellaBlocks``): each block's values are dropped at random, row by row.

    Without ``rescale`` that is all (no pass). With it (their default) each
    model's kept values take one factor for the whole tensor
    (``sparsify.l1_scale``), so one round draws every block's mask and adds
    up the L1 norms before and after dropping. The merge then takes the
    kept values that round drew when they fit in ``blocks.KEPT_VALUES_BYTES``;
    otherwise the generators are rewound to where the round began and the
    merge draws the same masks again. Either way the bytes equal the
    whole-tensor merge.
    """

    elect_sign = True

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.rescale = bool(options["rescale"])
        self.passes = 1 if self.rescale else 0
        self.before = [0.0] * len(params)
        self.after = [0.0] * len(params)
        self.started: list[torch.Tensor] | None = None
        """Each generator's state before the first block was drawn."""
        self.rewound = False
        self.drawn: collections.deque[list[torch.Tensor]] | None = None
        """Each observed block's kept values, one per model, in block order (when they fit)."""
        if self.rescale and count * 4 * len(params) <= blocks.KEPT_VALUES_BYTES:
            self.drawn = collections.deque()

    @staticmethod
    def drop(delta: torch.Tensor, params: dict[str, Any], generator: torch.Generator | None) -> torch.Tensor:
        """The kept values of one block of a task vector, not rescaled."""
        return sparsify.drop_random(delta, params["density"], generator, rescale=False)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        generators = _generators(inputs)
        if self.started is None:
            self.started = [generator.get_state() for generator in generators]

        def observe_model(index: int) -> torch.Tensor:
            delta = inputs.tensors[index] - inputs.base
            kept = self.drop(delta, inputs.params[index], inputs.generator_for(index))
            self.before[index] += sparsify.l1_norm(delta)  # each thread adds to its own model's sums only
            self.after[index] += sparsify.l1_norm(kept)
            return kept

        block = for_each_model(inputs, observe_model)
        if self.drawn is not None:
            self.drawn.append(block)

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        drawn = self.drawn.popleft() if self.drawn else None
        if drawn is None and self.started is not None and not self.rewound:
            for generator, state in zip(_generators(inputs), self.started):
                generator.set_state(state)
            self.rewound = True
        scales = [sparsify.l1_scale(*norms) if self.rescale else 1.0 for norms in zip(self.before, self.after)]
        if drawn is not None:
            scaled = [kept.mul_(scale) if scale != 1.0 else kept for kept, scale in zip(drawn, scales)]
            return combine(inputs, None, elect_sign=self.elect_sign, sparsified=scaled)

        def drop(delta: torch.Tensor, params: dict[str, Any], inputs: MergeInputs, index: int) -> torch.Tensor:
            kept = self.drop(delta, params, inputs.generator_for(index))
            return kept.mul_(scales[index]) if scales[index] != 1.0 else kept

        return combine(inputs, drop, elect_sign=self.elect_sign)


class RandomDropLinearBlocks(RandomDropBlocks):
    """DARE without sign election, by blocks."""

    elect_sign = False


class DellaBlocks(RandomDropBlocks):
    """DELLA by blocks: MAGPRUNE's ranks are taken within rows, and blocks hold whole rows."""

    @staticmethod
    def drop(delta: torch.Tensor, params: dict[str, Any], generator: torch.Generator | None) -> torch.Tensor:
        return sparsify.magnitude_prune(delta, params["density"], params["epsilon"], generator, rescale=False)


class DellaLinearBlocks(DellaBlocks):
    """DELLA without sign election, by blocks."""

    elect_sign = False


def _generators(inputs: MergeInputs) -> list[torch.Generator]:
    """Every generator the models draw from: one each, or the one they share."""
    if inputs.generators:
        return list(inputs.generators)
    return [inputs.generator] if inputs.generator is not None else []


class TiesBlocks:
    """TIES by blocks: two counting rounds find each model's magnitude thresholds, then blocks merge as a whole would.

    The masks are exactly those of the whole-tensor trim (see
    ``ranking.RankWindow``), and the rest of the method is elementwise, so
    the bytes equal the whole-tensor merge. Breadcrumbs differs only in the
    window of ranks it keeps and whether signs are elected.
    """

    elect_sign = True

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.options = options
        self.windows = [
            RankWindow(*self.window(count, model), count) if model["density"] < 1 else None for model in params
        ]
        self.rescale = bool(options.get("rescale", False))
        self.passes = 3 if self.rescale else 2
        """Two counting rounds; with ``rescale`` a third adds up each task vector's L1 norm before and after."""
        self.before = [0.0] * len(params)
        self.after = [0.0] * len(params)
        self.rewound = False

    @staticmethod
    def window(count: int, params: dict[str, Any]) -> tuple[int, int]:
        """The ascending magnitude ranks ``[start, stop)`` one model keeps."""
        return sparsify.largest_window(count, params["density"])

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        for index, (tensor, window) in enumerate(zip(inputs.tensors, self.windows)):
            if window is None or (not window.counts and round_index < 2):
                continue
            delta = tensor - inputs.base
            if round_index == 2:
                self.before[index] += sparsify.l1_norm(delta)
                self.after[index] += sparsify.l1_norm(delta.mul_(window.mask(delta.abs())))
            elif round_index == 0:
                window.count_high(delta.abs_())
            else:
                window.count_low(delta.abs_())

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        if self.rescale and not self.rewound:  # the L1 round walked the masks once already
            for window in filter(None, self.windows):
                window.rewind()
            self.rewound = True

        def trim(delta: torch.Tensor, params: dict[str, Any], inputs: MergeInputs, index: int) -> torch.Tensor:
            window = self.windows[index]
            if window is None:
                return delta
            kept = delta.mul_(window.mask(delta.abs()))
            return kept.mul_(sparsify.l1_scale(self.before[index], self.after[index])) if self.rescale else kept

        return combine(inputs, trim, elect_sign=self.elect_sign)


class BreadcrumbsBlocks(TiesBlocks):
    """Breadcrumbs by blocks: the middle window of magnitudes, no sign election."""

    elect_sign = False

    @staticmethod
    def window(count: int, params: dict[str, Any]) -> tuple[int, int]:
        return sparsify.middle_window(count, params["density"], params["gamma"])


class BreadcrumbsTiesBlocks(BreadcrumbsBlocks):
    """Breadcrumbs pruning with TIES sign election, by blocks."""

    elect_sign = True
