"""Select values by magnitude rank in linear time: a radix select on the bits of float32 magnitudes.

Non-negative float32 values order exactly as their bit patterns read as
integers, so the value at a given rank is found with two counting passes:
``bincount`` of the high 16 bits finds the bucket that holds the rank, a
second ``bincount`` of the low 16 bits inside that bucket finds the exact
value. That is O(n) with small constant factors, where ``topk`` with k near
n/2 or a full ``argsort`` costs O(n log n) and dominated TIES and
breadcrumbs merges of large models.

Ranks are those of a stable ascending sort: equal magnitudes rank in index
order, so a selection is deterministic whatever the data.
"""

from __future__ import annotations

import torch

_HALF = 1 << 16


def rank_mask(magnitudes: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Boolean mask (same shape) of the values whose stable ascending rank r has ``start <= r < stop``."""
    flat = magnitudes.reshape(-1).to(torch.float32)
    count = flat.numel()
    start, stop = max(0, start), min(count, stop)
    if start >= stop:
        return torch.zeros(magnitudes.shape, dtype=torch.bool, device=magnitudes.device)
    bits = flat.view(torch.int32)
    mask = torch.ones(count, dtype=torch.bool, device=flat.device)
    if start > 0:
        mask &= _at_or_after(bits, start)
    if stop < count:
        mask &= ~_at_or_after(bits, stop)
    return mask.view(magnitudes.shape)


def _at_or_after(bits: torch.Tensor, rank: int) -> torch.Tensor:
    """Mask of the values whose stable ascending rank is ``rank`` or more."""
    value, below = _value_at_rank(bits, rank)
    if rank == below:
        return bits >= value
    mask = bits > value
    equal = (bits == value).nonzero().view(-1)
    # Equal values rank in index order: the first (rank - below) of them come before ``rank``.
    mask[equal[rank - below :]] = True
    return mask


def _value_at_rank(bits: torch.Tensor, rank: int) -> tuple[int, int]:
    """The bit pattern of the value at ascending ``rank`` (0-based), and how many values are smaller."""
    high = bits >> 16
    cumulative = torch.bincount(high, minlength=_HALF // 2).cumsum(0)
    bucket = int(torch.searchsorted(cumulative, rank, right=True))
    before = int(cumulative[bucket - 1]) if bucket > 0 else 0
    low = bits[high == bucket] & (_HALF - 1)
    low_cumulative = torch.bincount(low, minlength=_HALF).cumsum(0)
    offset = int(torch.searchsorted(low_cumulative, rank - before, right=True))
    smaller = before + (int(low_cumulative[offset - 1]) if offset > 0 else 0)
    return (bucket << 16) | offset, smaller
