"""Sparsify a task vector: keep some of its values, drop the rest.

``rescale`` divides every kept value by its probability of being kept, so the
expected task vector is unchanged: DARE's ``1/density``, DELLA's per-value
``1/p``, and ``1/density`` for the deterministic methods. Selection by
magnitude rank is a linear-time radix select (``ranking.rank_mask``), not a
sort; equal magnitudes rank in index order.
"""

from __future__ import annotations

import torch

from tui_merge.methods.ranking import rank_mask, row_ranks


def largest_window(count: int, density: float) -> tuple[int, int]:
    """The ascending ranks ``[start, stop)`` TIES keeps: the ``density`` fraction largest in magnitude."""
    return count - int(density * count), count


def middle_window(count: int, density: float, gamma: float) -> tuple[int, int]:
    """The ascending ranks breadcrumbs keeps: ``gamma`` of the largest dropped, then the smallest, leaving ``density``.

    When ``gamma`` exceeds ``1 - density`` fewer of the largest are dropped so that
    ``density`` still holds. (mergekit's slicing keeps nothing when the count of
    largest values to drop rounds to zero; here it keeps what the formula says.)
    """
    keep = int(density * count)
    drop_top = int(gamma * count)
    drop_bottom = count - keep - drop_top
    if drop_bottom < 0:
        drop_top += drop_bottom
        drop_bottom = 0
    return drop_bottom, count - drop_top


def keep_window(delta: torch.Tensor, window: tuple[int, int], density: float, rescale: bool) -> torch.Tensor:
    """Keep the values whose magnitude rank is in ``window``; with ``rescale`` divide them by ``density``."""
    kept = delta * rank_mask(delta.abs(), *window)
    return kept / density if rescale and window[1] > window[0] else kept


def keep_largest(delta: torch.Tensor, density: float, rescale: bool = False) -> torch.Tensor:
    """TIES trim: keep the ``density`` fraction of values largest in magnitude."""
    if density >= 1:
        return delta
    return keep_window(delta, largest_window(delta.numel(), density), density, rescale)


def drop_random(delta: torch.Tensor, density: float, generator: torch.Generator, rescale: bool = True) -> torch.Tensor:
    """DARE: keep each value with probability ``density``."""
    if density >= 1:
        return delta
    mask = torch.rand(delta.shape, generator=generator).to(delta.device) < density
    kept = delta * mask
    return kept / density if rescale and density > 0 else kept


def keep_middle(delta: torch.Tensor, density: float, gamma: float, rescale: bool = False) -> torch.Tensor:
    """Breadcrumbs: drop the ``gamma`` fraction largest, then the smallest, leaving ``density`` (``middle_window``)."""
    if density >= 1:
        return delta
    return keep_window(delta, middle_window(delta.numel(), density, gamma), density, rescale)


def magnitude_prune(
    delta: torch.Tensor, density: float, epsilon: float, generator: torch.Generator, rescale: bool = True
) -> torch.Tensor:
    """DELLA MAGPRUNE: per row, keep probability rises linearly with magnitude rank.

    Ranks are taken at bfloat16 precision in linear time (``ranking.row_ranks``).

    The smallest value of a row is kept with probability ``density - epsilon``,
    the largest with ``density + epsilon``; a one-value row with ``density``.
    """
    if density >= 1:
        return delta
    if density <= 0:
        return torch.zeros_like(delta)
    rows = delta.reshape(1, -1) if delta.dim() < 2 else delta.reshape(delta.shape[0], -1)
    span = rows.shape[1] - 1
    # Written in place, one row-sized tensor after another: this runs on every value of every fine-tune.
    keep_probability = row_ranks(rows.abs())
    if span > 0:
        keep_probability.mul_(2 * epsilon / span).add_(density - epsilon)
    else:
        keep_probability.fill_(density)
    kept_values = torch.rand(rows.shape, generator=generator).to(rows.device).lt_(keep_probability)  # 1.0 or 0.0
    kept = rows / keep_probability if rescale else rows.clone()
    kept.mul_(kept_values)
    return kept.reshape(delta.shape)
