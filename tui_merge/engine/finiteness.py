"""Whether tensors hold NaN or Inf: the merge refuses such inputs and verify checks its outputs the same way.

Kept apart from the executor so that verification can ask it without importing the merge.
"""

from __future__ import annotations

import torch

__all__ = ["all_finite", "shared_infinities"]


def all_finite(tensor: torch.Tensor) -> bool:
    """True when no element is NaN or Inf.

    A finite sum proves it (a NaN or Inf anywhere makes the sum NaN or Inf)
    at a twentieth of the cost of an element-wise test, which only runs when
    the sum is not finite (a sum can overflow on finite values).
    """
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    if bool(torch.isfinite(tensor.sum(dtype=torch.float32))):
        return True
    return bool(torch.isfinite(tensor).all())


def shared_infinities(tensors: list[torch.Tensor]) -> torch.Tensor | None:
    """Where every tensor holds the same infinity (a mask), when those are all their non-finite values and they
    hold no NaN; None otherwise. The merge keeps such infinities and verify accepts them."""
    places = torch.isinf(tensors[0])
    shared = all(
        tensor.shape == places.shape and not torch.isnan(tensor).any()
        and torch.equal(torch.isinf(tensor), places) and torch.equal(tensor[places], tensors[0][places])
        for tensor in tensors
    )  # fmt: skip
    return places if shared else None
