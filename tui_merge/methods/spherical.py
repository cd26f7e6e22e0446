"""Spherical methods: interpolation along the hypersphere instead of the straight line.

Angles come from float64 inner products (``methods.products``): for
100M-element tensors a float32 dot product loses the digits that decide
whether two vectors are nearly colinear. Every method here is a linear
combination of its inputs whose coefficients depend only on their Gram
matrix (multislerp's tangent step and Karcher's iterations are carried out
on the coefficients), so a large tensor is merged by blocks of rows: one
round adds up the blocks' Gram matrices, then each block is combined.
"""

from __future__ import annotations

import math

import torch

from tui_merge.methods.blocks import merge_whole
from tui_merge.methods.inputs import MergeInputs
from tui_merge.methods.products import combination, gram

COLINEAR_DOT = 0.9995
"""Above this |cos| two vectors are treated as colinear and interpolated linearly (as mergekit does)."""


def slerp(inputs: MergeInputs) -> torch.Tensor:
    """Spherical interpolation from the base (t=0) to the other model (t=1)."""
    return slerp_pair(inputs.options["t"], inputs.base, inputs.tensors[0])


def slerp_pair(t: float, start: torch.Tensor, end: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Slerp of two tensors seen as flat vectors; lerp when they are (anti)colinear."""
    first, second = _slerp_coefficients(t, gram([start, end]), eps)
    return (start * first).add_(end, alpha=second)


def _slerp_coefficients(t: float, products: torch.Tensor, eps: float = 1e-8) -> tuple[float, float]:
    """The factors of start and end: from the angle between them, or (1-t, t) when they are (anti)colinear."""
    start_norm, end_norm = math.sqrt(float(products[0, 0])), math.sqrt(float(products[1, 1]))
    dot = 0.0 if start_norm <= eps or end_norm <= eps else float(products[0, 1]) / (start_norm * end_norm)
    if abs(dot) > COLINEAR_DOT:
        return 1 - t, t
    theta = math.acos(max(-1.0, min(1.0, dot)))
    sin_theta = math.sin(theta)
    return math.sin((1 - t) * theta) / sin_theta, math.sin(t * theta) / sin_theta


class SlerpBlocks:
    """Slerp by blocks: one round sums the float64 products over all blocks, then each block is interpolated."""

    passes = 1

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.t = options["t"]
        self.products = torch.zeros(2, 2, dtype=torch.float64)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        self.products += gram([inputs.base, inputs.tensors[0]])

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        first, second = _slerp_coefficients(self.t, self.products)
        return (inputs.base * first).add_(inputs.tensors[0], alpha=second)


def nuslerp(inputs: MergeInputs) -> torch.Tensor:
    """Slerp of two models by weight ratio, row- or column-wise, or of their task vectors with a base."""
    return merge_whole(NuslerpBlocks, inputs)


class NuslerpBlocks:
    """Nuslerp by blocks.

    The interpolated vectors are the whole tensor (``nuslerp_flatten``), the
    last-dimension vectors within each row (the default without flatten:
    each block holds whole vectors, so it needs no pass), or the columns
    (``nuslerp_row_wise``: their float64 products are summed over the blocks).
    """

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        weights = [model["weight"] for model in params]
        total = sum(weights)
        self.t = 0.5 if abs(total) < 1e-6 else weights[1] / total
        self.flatten, self.row_wise = options["nuslerp_flatten"], options["nuslerp_row_wise"]
        self.passes = 1 if self.flatten or self.row_wise else 0
        self.products: list[torch.Tensor] | None = None

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        products = self._products(*_task_vectors(inputs))
        self.products = products if self.products is None else [a + b for a, b in zip(self.products, products)]

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        first, second = _task_vectors(inputs)
        products = self.products if self.passes else self._products(first, second)
        first_factor, second_factor = _nuslerp_coefficients(self.t, *products)
        merged = first.mul(first_factor.to(first.device)).add_(second.mul(second_factor.to(second.device)))
        return merged if inputs.base is None else merged.add_(inputs.base)

    def _products(self, first: torch.Tensor, second: torch.Tensor) -> list[torch.Tensor]:
        """``|a|^2``, ``|b|^2`` and ``a.b`` in float64: of the whole tensor, or per vector with a kept dimension."""
        if self.flatten or first.dim() < 2:
            products = gram([first, second])
            return [products[0, 0], products[1, 1], products[0, 1]]
        dim = 0 if self.row_wise else -1
        first, second = first.double(), second.double()
        return [
            (first * first).sum(dim, keepdim=True),
            (second * second).sum(dim, keepdim=True),
            (first * second).sum(dim, keepdim=True),
        ]


def _task_vectors(inputs: MergeInputs) -> list[torch.Tensor]:
    if inputs.base is None:
        return list(inputs.tensors)
    return [tensor - inputs.base for tensor in inputs.tensors]


def _nuslerp_coefficients(
    t: float, first_square: torch.Tensor, second_square: torch.Tensor, cross: torch.Tensor, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 factors of the two vectors: slerp by the angle between them, lerp where they are colinear."""
    norms = first_square.sqrt().clamp(min=1e-7) * second_square.sqrt().clamp(min=1e-7)
    theta = torch.acos((cross / norms).clamp(-1, 1))
    sin_theta = torch.sin(theta)
    colinear = sin_theta.abs() < eps
    divisor = torch.where(colinear, torch.ones_like(sin_theta), sin_theta)
    first = torch.where(colinear, 1 - t, torch.sin((1 - t) * theta) / divisor)
    second = torch.where(colinear, t, torch.sin(t * theta) / divisor)
    return first.float(), second.float()


def multislerp(inputs: MergeInputs) -> torch.Tensor:
    """Weighted barycentre on the hypersphere via the tangent space at the weighted mean direction."""
    return merge_whole(MultislerpBlocks, inputs)


class MultislerpBlocks:
    """Multislerp by blocks: one round sums the Gram matrix of the (task) vectors, then each block is combined."""

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.weights = [model["weight"] for model in params]
        self.normalize, self.eps = options["normalize_weights"], options["eps"]
        self.passes = 1 if len(params) > 1 else 0
        self.products = torch.zeros(len(params), len(params), dtype=torch.float64)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        self.products += gram(_task_vectors(inputs))

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        if len(inputs.tensors) == 1:
            return inputs.tensors[0]
        coefficients = multislerp_coefficients(self.products, self.weights, self.normalize, self.eps)
        merged = combination(_task_vectors(inputs), coefficients)
        return merged if inputs.base is None else merged.add_(inputs.base)


def multislerp_coefficients(products: torch.Tensor, weights: list[float], normalize: bool, eps: float) -> list[float]:
    """The factor of each vector in the multislerp result, from their Gram matrix.

    The unit vectors ``u_i = v_i / (|v_i| + eps)`` are averaged with the
    weights into the mean direction ``m``; the weighted tangent vectors
    ``u_i - (u_i.m) m`` give one exponential-map step from ``m``, and the
    direction found is scaled by the weighted sum of the norms. Every vector
    involved is a combination of the ``v_i``, so the steps run on their
    coefficients, with the Gram matrix for every inner product.
    """
    w = torch.tensor(weights, dtype=torch.float64)
    if normalize:
        w = w / w.sum()
    norms = products.diagonal().clamp(min=0).sqrt()
    unit_scale = 1 / (norms + eps)
    units = products * torch.outer(unit_scale, unit_scale)

    def norm(coefficients: torch.Tensor) -> float:
        return math.sqrt(max(0.0, float(coefficients @ units @ coefficients)))

    mean_norm = norm(w)
    if mean_norm < eps:
        # Antipodal inputs with balanced weights: no mean direction exists.
        return w.tolist()
    mean = w / mean_norm
    dots = units @ mean
    tangent = w - float(w @ dots) * mean
    tangent_norm = norm(tangent) + eps
    direction = mean * math.cos(tangent_norm) + tangent * (math.sin(tangent_norm) / tangent_norm)
    return (direction * unit_scale * float(norms @ w)).tolist()


def karcher(inputs: MergeInputs) -> torch.Tensor:
    """Equal-weight Karcher mean of the directions, scaled by the mean norm."""
    return merge_whole(KarcherBlocks, inputs)


class KarcherBlocks:
    """Karcher mean by blocks: one round sums the Gram matrix of the models, then each block is combined."""

    def __init__(self, options: dict, params: list[dict], count: int) -> None:
        self.tol, self.max_iter = options["tol"], options["max_iter"]
        self.passes = 1 if len(params) > 1 else 0
        self.products = torch.zeros(len(params), len(params), dtype=torch.float64)

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        self.products += gram(inputs.tensors)

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        if len(inputs.tensors) == 1:
            return inputs.tensors[0]
        coefficients = karcher_coefficients(self.products, self.tol, self.max_iter)
        if coefficients is None:
            return torch.zeros_like(inputs.tensors[0])
        return combination(inputs.tensors, coefficients)


def karcher_coefficients(products: torch.Tensor, tol: float, max_iter: int) -> list[float] | None:
    """The factor of each model in the Karcher mean, from their Gram matrix; None when every model is ~0.

    The mean direction stays a combination of the unit vectors of the
    models whose norm exceeds ``tol`` (equal weights); each iteration moves
    it along the weighted log map ``theta / sin(theta) (u - cos(theta) m)``
    and back onto the sphere. The result is that direction times the mean
    norm of all the models.
    """
    norms = products.diagonal().clamp(min=0).sqrt()
    kept = [index for index in range(len(norms)) if float(norms[index]) > tol]
    if not kept:
        return None
    kept_norms = norms[kept]
    units = products[kept][:, kept] / torch.outer(kept_norms, kept_norms)
    weight = 1.0 / len(kept)

    def norm(coefficients: torch.Tensor) -> float:
        return math.sqrt(max(0.0, float(coefficients @ units @ coefficients)))

    mean = torch.full((len(kept),), weight, dtype=torch.float64)
    mean_norm = norm(mean)
    mean = torch.eye(len(kept), dtype=torch.float64)[0] if mean_norm < tol else mean / mean_norm
    for _ in range(max_iter):
        dots = (units @ mean).clamp(-1.0, 1.0)
        tangent = torch.zeros_like(mean)
        for index, dot in enumerate(dots.tolist()):
            theta = math.acos(dot)
            if theta < tol:
                continue
            tangent -= weight * (theta / math.sin(theta)) * dot * mean
            tangent[index] += weight * (theta / math.sin(theta))
        tangent_norm = norm(tangent)
        if tangent_norm < tol:
            break
        mean = math.cos(tangent_norm) * mean + math.sin(tangent_norm) * (tangent / tangent_norm)
        mean = mean / max(norm(mean), tol)
    scale = float(norms.mean())
    coefficients = [0.0] * len(norms)
    for position, index in enumerate(kept):
        coefficients[index] = scale * float(mean[position]) / float(norms[index])
    return coefficients
