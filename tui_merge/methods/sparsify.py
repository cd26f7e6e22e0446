"""Sparsify a task vector: keep some of its values, drop the rest.

``rescale`` is mergekit's: the kept values are multiplied by one factor per
model and tensor, ``|d|_1 / |kept|_1``, so the task vector keeps its L1 norm
(no factor when either norm is below ``1e-7``). For DARE that factor is close
to ``1/density``; for DELLA, whose kept values lean to the large ones, it is
smaller than the mean of ``1/p``. The factor is rounded to float32 before it
is applied, so a tensor merged by blocks (whose norms add up in another order)
gets the same bytes as one merged whole. Selection by magnitude rank is a
linear-time radix select (``ranking.rank_mask``), not a sort; equal magnitudes
rank in index order.
"""

from __future__ import annotations

import torch

from tui_merge.methods import draws
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


L1_EPSILON = 1e-7
"""Below this L1 norm (before or after dropping) the kept values are left as they are, as in mergekit."""


def l1_scale(before: float, after: float) -> float:
    """The rescale factor for a task vector of L1 norm ``before`` whose kept values have ``after``, in float32."""
    if before < L1_EPSILON or after < L1_EPSILON:
        return 1.0
    return float(torch.tensor(before / after, dtype=torch.float32))


def l1_norm(tensor: torch.Tensor) -> float:
    """The sum of absolute values, added up in float64 (converting first is a third faster than ``sum(dtype=)``)."""
    return float(tensor.abs().double().sum())


def rescaled(delta: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``kept`` scaled in place to the L1 norm of the whole ``delta`` it came from."""
    return kept.mul_(l1_scale(l1_norm(delta), l1_norm(kept)))


def keep_window(delta: torch.Tensor, window: tuple[int, int], density: float, rescale: bool) -> torch.Tensor:
    """Keep the values whose magnitude rank is in ``window`` (rescaled with ``rescale``)."""
    kept = delta * rank_mask(delta.abs(), *window)
    return rescaled(delta, kept) if rescale else kept


def keep_largest(delta: torch.Tensor, density: float, rescale: bool = False) -> torch.Tensor:
    """TIES trim: keep the ``density`` fraction of values largest in magnitude."""
    if density >= 1:
        return delta
    return keep_window(delta, largest_window(delta.numel(), density), density, rescale)


def drop_random(delta: torch.Tensor, density: float, generator: torch.Generator, rescale: bool = True) -> torch.Tensor:
    """DARE: keep each value with probability ``density`` (drawn as ``draws`` says)."""
    if density >= 1:
        return delta
    kept = draws.below(delta.shape, density, generator, delta.device).mul_(delta)
    return rescaled(delta, kept) if rescale else kept


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
    kept = draws.below(rows.shape, keep_probability, generator, rows.device).mul_(rows)
    kept = kept.reshape(delta.shape)
    return rescaled(delta, kept) if rescale else kept
