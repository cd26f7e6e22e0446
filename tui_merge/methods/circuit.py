"""Circuit: a priority-ordered DELLA variant (from the Circuit-Merge tool).

Models are listed highest priority first. Each model's task vector has its
changes below ``meaningful_change_threshold`` zeroed, then is pruned with a
drop rate ``calculate_p`` that is lowest for the highest-priority model, the
rate spread by ``epsilon`` so larger changes survive more often. Models are
then folded in from lowest to highest priority: a value's first change is
taken as it is; a later change of the opposite sign replaces it (higher
priority wins); a later change of the same sign is averaged with it, halving
the earlier ones at temperature 0 and as a plain running mean at temperature 1.
"""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def calculate_p(i: int, count: int, temperature: float, base_droprate: float) -> float:
    """Drop rate of the i-th model counted from the lowest priority (1) to the highest (count)."""
    if count == 1:
        return base_droprate * 2
    i = max(i, 2)
    keep = 0.5 ** (count - i + 1) * (1 - base_droprate) * 2
    keep = (1 - temperature) * keep + temperature * (1 - base_droprate)
    return 1.0 - keep


def prune(delta: torch.Tensor, p: float, epsilon: float, generator: torch.Generator, rescale: bool) -> torch.Tensor:
    """Drop values with probability ``p - epsilon/2`` (largest) to ``p + epsilon/2`` (smallest)."""
    magnitude = delta.abs()
    low, high = float(magnitude.min()), float(magnitude.max())
    smallness = 1 - (magnitude - low) / (high - low) if high > low else torch.full_like(magnitude, 0.5)
    drop = p - epsilon / 2 + epsilon * smallness
    dropped = torch.rand(delta.shape, generator=generator).to(delta.device) < drop
    pruned = torch.where(dropped, torch.zeros_like(delta), delta)
    if rescale:
        pruned = torch.where(dropped, pruned, pruned / (1 - drop))
    return pruned


def circuit(inputs: MergeInputs) -> torch.Tensor:
    """Fold the pruned task vectors from lowest to highest priority into the base."""
    options = inputs.options
    temperature = options["temperature"]
    count = len(inputs.tensors)
    accumulated = torch.zeros_like(inputs.base)
    contributions = torch.zeros_like(inputs.base)
    for i, tensor in enumerate(reversed(inputs.tensors), 1):
        delta = tensor - inputs.base
        delta = torch.where(delta.abs() < options["meaningful_change_threshold"], torch.zeros_like(delta), delta)
        p = calculate_p(i, count, temperature, options["base_droprate"])
        if p != 0.0:
            delta = prune(delta, p, options["epsilon"], inputs.generator, not options["skip_rescaling"])
        present = delta != 0
        first = present & (contributions == 0)
        later = present & (contributions > 0)
        agree = later & (accumulated.sign() == delta.sign())
        disagree = later & ~agree
        counts_after = contributions + 1
        halved = (accumulated + delta) / 2
        running = (accumulated * contributions + delta) / counts_after
        blended = (1 - temperature) * halved + temperature * running
        accumulated = torch.where(first | disagree, delta, torch.where(agree, blended, accumulated))
        contributions = torch.where(first | disagree, torch.ones_like(contributions),
                                    torch.where(agree, counts_after, contributions))  # fmt: skip
    return inputs.base + accumulated
