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

import numpy as np
import torch

_HALF = 1 << 16


def rank_mask(magnitudes: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Boolean mask (same shape) of the values whose stable ascending rank r has ``start <= r < stop``."""
    window = RankWindow(start, stop, magnitudes.numel())
    window.count_high(magnitudes)
    window.count_low(magnitudes)
    return window.mask(magnitudes)


class RankWindow:
    """``rank_mask(values, start, stop)`` over the blocks of a tensor: two selectors, one per boundary."""

    def __init__(self, start: int, stop: int, count: int) -> None:
        self.start, self.stop = max(0, start), min(count, stop)
        self.lower = BlockwiseRankMask(self.start, count)
        self.upper = BlockwiseRankMask(self.stop, count)

    @property
    def empty(self) -> bool:
        """True when no value is kept."""
        return self.start >= self.stop

    @property
    def counts(self) -> bool:
        """True when the window needs the counting rounds: it keeps some values but not all."""
        return not self.empty and not (self.lower.trivial and self.upper.trivial)

    def count_high(self, magnitudes: torch.Tensor) -> None:
        """First round over the blocks (see ``BlockwiseRankMask``)."""
        for selector in (self.lower, self.upper):
            if self.counts and not selector.trivial:
                selector.count_high(magnitudes)

    def count_low(self, magnitudes: torch.Tensor) -> None:
        """Second round over the blocks."""
        for selector in (self.lower, self.upper):
            if self.counts and not selector.trivial:
                selector.count_low(magnitudes)

    def rewind(self) -> None:
        """Start the ``mask`` round again from the first block."""
        self.lower.rewind()
        self.upper.rewind()

    def mask(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Third round: the mask of one block (blocks in order)."""
        if self.empty:
            return torch.zeros(magnitudes.shape, dtype=torch.bool, device=magnitudes.device)
        mask = self.lower.mask(magnitudes)
        if not self.upper.trivial:
            mask &= ~self.upper.mask(magnitudes)
        return mask


class BlockwiseRankMask:
    """``rank_mask(values, rank, n)`` (the values at stable ascending rank ``rank`` or more) over blocks.

    The same radix select, its counts summed over the blocks of a tensor
    seen in order: ``count_high`` on every block, then ``count_low`` on
    every block, then ``mask`` on every block gives exactly the rows of the
    whole-tensor mask (equal values are taken in index order across blocks).
    Values must be non-negative (+0.0, not -0.0): only then do their bits
    order as integers.
    """

    def __init__(self, rank: int, count: int) -> None:
        self.rank, self.count = rank, count
        self.high = torch.zeros(_HALF // 2, dtype=torch.int64)
        self.low = torch.zeros(_HALF, dtype=torch.int64)
        self.bucket: int | None = None
        self.before = 0
        self.value: int | None = None
        self.below = 0
        self.equal_seen = 0

    @property
    def trivial(self) -> bool:
        """True when every value, or none, is kept: no counting needed."""
        return self.rank <= 0 or self.rank >= self.count

    def count_high(self, magnitudes: torch.Tensor) -> None:
        """First round: the high 16 bits of one block."""
        self.high += torch.bincount(torch.bitwise_right_shift(_bits(magnitudes), 16), minlength=_HALF // 2).cpu()

    def count_low(self, magnitudes: torch.Tensor) -> None:
        """Second round: the low 16 bits of one block's values in the bucket that holds ``rank``."""
        if self.bucket is None:
            cumulative = self.high.cumsum(0)
            self.bucket = int(torch.searchsorted(cumulative, self.rank, right=True))
            self.before = int(cumulative[self.bucket - 1]) if self.bucket > 0 else 0
        # Values below the bucket land in bin 0, above it in the last: boolean indexing would cost more.
        keys = _bits(magnitudes).sub(self.bucket << 16).clamp_(-1, _HALF).add_(1)
        self.low += torch.bincount(keys, minlength=_HALF + 2)[1 : _HALF + 1].cpu()

    def value_at_rank(self) -> float:
        """After both counting rounds: the value whose stable ascending rank is ``rank`` (0 <= rank < count)."""
        self._resolve()
        return float(torch.tensor(self.value, dtype=torch.int32).view(torch.float32))

    def rewind(self) -> None:
        """Start the ``mask`` round again from the first block."""
        self.equal_seen = 0

    def _resolve(self) -> None:
        if self.value is None:
            low_cumulative = self.low.cumsum(0)
            offset = int(torch.searchsorted(low_cumulative, self.rank - self.before, right=True))
            self.value = (self.bucket << 16) | offset
            self.below = self.before + (int(low_cumulative[offset - 1]) if offset > 0 else 0)

    def mask(self, magnitudes: torch.Tensor) -> torch.Tensor:
        """Third round: the mask of one block (blocks in order)."""
        if self.rank <= 0:
            return torch.ones(magnitudes.shape, dtype=torch.bool, device=magnitudes.device)
        if self.rank >= self.count:
            return torch.zeros(magnitudes.shape, dtype=torch.bool, device=magnitudes.device)
        self._resolve()
        bits = _bits(magnitudes)
        equal = bits == self.value
        equal_count = int(torch.count_nonzero(equal))
        dropped = min(equal_count, max(0, self.rank - self.below - self.equal_seen))  # this block's equals left out
        self.equal_seen += equal_count
        if dropped == 0:
            return bits.ge(self.value).view(magnitudes.shape)
        mask = bits > self.value
        if dropped < equal_count:
            mask[equal.nonzero().view(-1)[dropped:]] = True
        return mask.view(magnitudes.shape)


def _bits(magnitudes: torch.Tensor) -> torch.Tensor:
    return magnitudes.reshape(-1).to(torch.float32).view(torch.int32)


def row_ranks(magnitudes: torch.Tensor) -> torch.Tensor:
    """Each value's ascending rank within its row of a 2-D tensor of magnitudes, at bfloat16 precision, as float32.

    Magnitudes are compared by their top 16 bits (sign, exponent and 7
    mantissa bits: the bfloat16 the float32 truncates to), equal keys in
    index order. numpy's stable sort of 16-bit integers is a radix sort, so
    this is O(n) where a float sort of each row is O(n log n) and dominated
    DELLA merges. The ranks are the exact stable ranks of the magnitudes
    whenever those are bfloat16 values, which is what the task vector of a
    bf16 fine-tune almost entirely is (the difference of two bf16 numbers
    within a factor of two of each other is exact in bf16); otherwise only
    values that agree to 8 significant bits can trade places, which moves
    DELLA's keep probability by less than ``2 * epsilon * ties / row``.
    """
    bits = magnitudes.to(torch.float32).contiguous().view(torch.int32).cpu()
    keys = torch.bitwise_right_shift(bits, 16).to(torch.int16).numpy().view(np.uint16)  # sign bit 0: order kept
    order = torch.from_numpy(np.argsort(keys, axis=1, kind="stable"))
    ranks = torch.empty(bits.shape, dtype=torch.float32)
    ranks.scatter_(1, order, torch.arange(bits.shape[1], dtype=torch.float32).expand(bits.shape))
    return ranks.to(magnitudes.device)
