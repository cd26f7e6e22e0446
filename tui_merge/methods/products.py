"""Inner products of whole tensors in float64, a chunk at a time.

Spherical methods and model stock need the angles between tensors seen as
flat vectors. For 100M-element tensors a float32 dot product loses the
digits that decide whether two vectors are nearly colinear, so products are
summed in float64; chunks keep the float64 copies small (8 MiB per tensor)
instead of doubling a whole embedding matrix. The Gram matrix of the
tensors is all these methods need of the whole tensor, so blocks of rows
can add up their Gram matrices and then merge (see ``methods.blocks``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_CHUNK = 1 << 20


def gram(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The k x k float64 matrix of ``<a, b>`` for every pair of the k tensors, on the CPU."""
    flat = [tensor.reshape(-1) for tensor in tensors]
    total = torch.zeros(len(flat), len(flat), dtype=torch.float64)
    for begin in range(0, flat[0].numel() if flat else 0, _CHUNK):
        chunks = [vector[begin : begin + _CHUNK].double() for vector in flat]
        # One dot product per pair: a tenth of the time of stacking the chunks and multiplying k x n by n x k.
        for row, first in enumerate(chunks):
            for column in range(row, len(chunks)):
                product = float(torch.dot(first, chunks[column]))
                total[row, column] += product
                if column != row:
                    total[column, row] += product
    return total


def combination(tensors: Sequence[torch.Tensor], coefficients: Sequence[float]) -> torch.Tensor:
    """``sum(c_i * t_i)`` in float32 with the coefficients given as Python floats."""
    result = tensors[0] * coefficients[0]
    for tensor, coefficient in zip(tensors[1:], coefficients[1:]):
        result.add_(tensor, alpha=coefficient)
    return result
