"""Sparsify a task vector: keep some of its values, drop the rest.

``rescale`` divides every kept value by its probability of being kept, so the
expected task vector is unchanged: DARE's ``1/density``, DELLA's per-value
``1/p``, and ``1/density`` for the deterministic methods. Selection by
magnitude rank is a linear-time radix select (``ranking.rank_mask``), not a
sort; equal magnitudes rank in index order.
"""

from __future__ import annotations

import torch

from tui_merge.methods.ranking import rank_mask


def keep_largest(delta: torch.Tensor, density: float, rescale: bool = False) -> torch.Tensor:
    """TIES trim: keep the ``density`` fraction of values largest in magnitude."""
    if density >= 1:
        return delta
    count = delta.numel()
    keep = int(density * count)
    kept = delta * rank_mask(delta.abs(), count - keep, count)
    return kept / density if rescale and keep > 0 else kept


def drop_random(delta: torch.Tensor, density: float, generator: torch.Generator, rescale: bool = True) -> torch.Tensor:
    """DARE: keep each value with probability ``density``."""
    if density >= 1:
        return delta
    mask = torch.rand(delta.shape, generator=generator).to(delta.device) < density
    kept = delta * mask
    return kept / density if rescale and density > 0 else kept


def keep_middle(delta: torch.Tensor, density: float, gamma: float, rescale: bool = False) -> torch.Tensor:
    """Breadcrumbs: drop the ``gamma`` fraction largest, then the smallest, leaving ``density``.

    When ``gamma`` exceeds ``1 - density`` fewer of the largest are dropped so that
    ``density`` still holds. (mergekit's slicing keeps nothing when the count of
    largest values to drop rounds to zero; here it keeps what the formula says.)
    """
    if density >= 1:
        return delta
    count = delta.numel()
    keep = int(density * count)
    drop_top = int(gamma * count)
    drop_bottom = count - keep - drop_top
    if drop_bottom < 0:
        drop_top += drop_bottom
        drop_bottom = 0
    kept = delta * rank_mask(delta.abs(), drop_bottom, count - drop_top)
    return kept / density if rescale and density > 0 else kept


def magnitude_prune(
    delta: torch.Tensor, density: float, epsilon: float, generator: torch.Generator, rescale: bool = True
) -> torch.Tensor:
    """DELLA MAGPRUNE: per row, keep probability rises linearly with magnitude rank.

    The smallest value of a row is kept with probability ``density - epsilon``,
    the largest with ``density + epsilon``; a one-value row with ``density``.
    """
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    rows = delta.reshape(1, -1) if delta.dim() < 2 else delta.reshape(delta.shape[0], -1)
    order = rows.abs().argsort(dim=1, stable=True)
    ranks = torch.empty_like(rows)
    # Inverting the permutation by scatter costs O(n); a second argsort would cost O(n log n).
    ranks.scatter_(1, order, torch.arange(rows.shape[1], dtype=rows.dtype, device=rows.device).expand_as(rows))
    del order
    span = rows.shape[1] - 1
    position = ranks / span if span > 0 else torch.full_like(ranks, 0.5)
    keep_probability = (density - epsilon) + position * 2 * epsilon
    mask = torch.rand(rows.shape, generator=generator).to(rows.device) < keep_probability
    kept = rows * mask
    if rescale:
        kept = kept / keep_probability
    return kept.reshape(delta.shape)
