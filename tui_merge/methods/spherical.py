"""Spherical methods: interpolation along the hypersphere instead of the straight line.

Angles are computed in float64: for 100M-element tensors a float32 dot product
loses the digits that decide whether two vectors are nearly colinear.
"""

from __future__ import annotations

import math

import torch

from tui_merge.methods.inputs import MergeInputs

COLINEAR_DOT = 0.9995
"""Above this |cos| two vectors are treated as colinear and interpolated linearly (as mergekit does)."""


def slerp(inputs: MergeInputs) -> torch.Tensor:
    """Spherical interpolation from the base (t=0) to the other model (t=1)."""
    return slerp_pair(inputs.options["t"], inputs.base, inputs.tensors[0])


def slerp_pair(t: float, start: torch.Tensor, end: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Slerp of two tensors seen as flat vectors; lerp when they are (anti)colinear."""
    first, second = _slerp_coefficients(t, *_float64_products(start, end), eps)
    return (start * first).add_(end, alpha=second)


def _slerp_coefficients(t: float, start_square: float, end_square: float, cross: float, eps: float = 1e-8):
    """The factors of start and end: from the angle between them, or (1-t, t) when they are (anti)colinear."""
    start_norm, end_norm = math.sqrt(start_square), math.sqrt(end_square)
    dot = 0.0 if start_norm <= eps or end_norm <= eps else cross / (start_norm * end_norm)
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
        self.products = [0.0, 0.0, 0.0]

    def observe(self, inputs: MergeInputs, round_index: int) -> None:
        for index, value in enumerate(_float64_products(inputs.base, inputs.tensors[0])):
            self.products[index] += value

    def merge(self, inputs: MergeInputs) -> torch.Tensor:
        first, second = _slerp_coefficients(self.t, *self.products)
        return (inputs.base * first).add_(inputs.tensors[0], alpha=second)


_PRODUCT_CHUNK = 1 << 20


def _float64_products(first: torch.Tensor, second: torch.Tensor) -> tuple[float, float, float]:
    """``first·first``, ``second·second`` and ``first·second`` accumulated in float64, a chunk at a time.

    Chunks keep the float64 copies small (8 MiB) instead of doubling a whole
    embedding matrix several times over.
    """
    flat_first, flat_second = first.reshape(-1), second.reshape(-1)
    totals = [0.0, 0.0, 0.0]
    for begin in range(0, flat_first.numel(), _PRODUCT_CHUNK):
        a = flat_first[begin : begin + _PRODUCT_CHUNK].double()
        b = flat_second[begin : begin + _PRODUCT_CHUNK].double()
        totals[0] += float(a @ a)
        totals[1] += float(b @ b)
        totals[2] += float(a @ b)
    return totals[0], totals[1], totals[2]


def nuslerp(inputs: MergeInputs) -> torch.Tensor:
    """Slerp of two models by weight ratio, row- or column-wise, or of their task vectors with a base."""
    weights = inputs.per_model("weight")
    total = sum(weights)
    t = 0.5 if abs(total) < 1e-6 else weights[1] / total
    first, second = inputs.tensors
    if inputs.base is not None:
        first, second = first - inputs.base, second - inputs.base
    merged = _slerp_along(
        t, first, second, flatten=inputs.options["nuslerp_flatten"], row_wise=inputs.options["nuslerp_row_wise"]
    )
    return merged if inputs.base is None else inputs.base + merged


def _slerp_along(
    t: float, first: torch.Tensor, second: torch.Tensor, *, flatten: bool, row_wise: bool, eps: float = 1e-8
) -> torch.Tensor:
    shape = first.shape
    if flatten or first.dim() < 2:
        first, second = first.reshape(1, -1), second.reshape(1, -1)
    elif row_wise:
        first, second = first.transpose(0, -1), second.transpose(0, -1)
    else:
        first, second = first, second
    unit_first = first / first.norm(dim=-1, keepdim=True).clamp(min=1e-7)
    unit_second = second / second.norm(dim=-1, keepdim=True).clamp(min=1e-7)
    theta = torch.acos((unit_first * unit_second).sum(dim=-1, keepdim=True).clamp(-1, 1))
    sin_theta = torch.sin(theta)
    colinear = sin_theta.abs() < eps
    spherical = (torch.sin((1 - t) * theta) * first + torch.sin(t * theta) * second) / torch.where(
        colinear, torch.ones_like(sin_theta), sin_theta
    )
    merged = torch.where(colinear, (1 - t) * first + t * second, spherical)
    if not flatten and first.dim() >= 2 and row_wise and len(shape) >= 2:
        merged = merged.transpose(0, -1)
    return merged.reshape(shape)


def multislerp(inputs: MergeInputs) -> torch.Tensor:
    """Weighted barycentre on the hypersphere via the tangent space at the weighted mean direction."""
    if len(inputs.tensors) == 1:
        return inputs.tensors[0]
    eps = inputs.options["eps"]
    stacked = torch.stack(inputs.tensors)
    if inputs.base is not None:
        stacked = stacked - inputs.base
    flat = stacked.flatten(1)
    weights = torch.tensor(inputs.per_model("weight"), dtype=flat.dtype, device=flat.device)
    if inputs.options["normalize_weights"]:
        weights = weights / weights.sum()
    norms = flat.norm(dim=-1, keepdim=True)
    units = flat / (norms + eps)
    mean = (units * weights.view(-1, 1)).sum(0)
    mean_norm = mean.norm()
    if mean_norm < eps:
        # Antipodal inputs with balanced weights: no mean direction exists.
        merged = (flat * weights.view(-1, 1)).sum(0)
    else:
        mean = mean / mean_norm
        tangents = units - (units * mean).sum(-1, keepdim=True) * mean
        tangent = (tangents * weights.view(-1, 1)).sum(0)
        tangent_norm = tangent.norm() + eps
        direction = mean * torch.cos(tangent_norm) + tangent * (torch.sin(tangent_norm) / tangent_norm)
        merged = direction * (norms.squeeze(-1) * weights).sum()
    merged = merged.reshape(stacked.shape[1:])
    return merged if inputs.base is None else merged + inputs.base


def karcher(inputs: MergeInputs) -> torch.Tensor:
    """Equal-weight Karcher mean of the directions, scaled by the mean norm."""
    tensors = inputs.tensors
    if len(tensors) == 1:
        return tensors[0]
    tol, max_iter = inputs.options["tol"], inputs.options["max_iter"]
    alpha = 1.0 / len(tensors)
    norms = [float(tensor.norm()) for tensor in tensors]
    units = [tensor.flatten() / norm for tensor, norm in zip(tensors, norms) if norm > tol]
    if not units:
        return torch.zeros_like(tensors[0])
    weights = [1.0 / len(units)] * len(units)
    mean = sum(weight * unit for weight, unit in zip(weights, units))
    mean_norm = float(mean.norm())
    mean = units[0].clone() if mean_norm < tol else mean / mean_norm
    for _ in range(max_iter):
        tangent = torch.zeros_like(mean)
        for weight, unit in zip(weights, units):
            dot = torch.clamp(mean @ unit, -1.0, 1.0)
            theta = torch.arccos(dot)
            if float(theta) < tol:
                continue
            tangent += weight * (theta / torch.sin(theta)) * (unit - dot * mean)
        tangent_norm = tangent.norm()
        if float(tangent_norm) < tol:
            break
        mean = torch.cos(tangent_norm) * mean + torch.sin(tangent_norm) * (tangent / tangent_norm)
        mean = mean / mean.norm().clamp(min=tol)
    scale = sum(alpha * norm for norm in norms)
    return (scale * mean).reshape(tensors[0].shape)
