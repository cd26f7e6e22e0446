"""Parameter values per tensor: scalars, gradients along the layers, and filtered conditions.

A value is a scalar, a gradient (a list of numbers interpolated along the
layers of a slice), or a list of conditions ``{filter: text, value: ...}``
where the first condition whose filter is a substring of the tensor name wins
(an entry without filter matches everything). A condition's value may itself
be a gradient.

Gradients follow mergekit exactly: in a slice of L layers, layer ``idx`` sits
at ``t = idx / (L - 1)``; with n anchors, ``s = t (n - 1)``, ``i = floor(s)``
and the value is ``(1 - (s - i)) a[i] + (s - i) a[min(i + 1, n - 1)]``.
Tensors outside the layers sit at ``t = 0``.

Precedence, highest first: slice-source, slice, per-model, global parameters.
A level whose conditions match nothing for a tensor leaves it to the next.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TensorPlace:
    """Where a tensor sits, as parameter values see it."""

    name: str
    """The output tensor name that filters match against."""
    position: float = 0.0
    """``t`` in [0, 1]: the layer's position in its slice; 0 outside the layers."""


def layer_position(index_in_slice: int | None, slice_length: int) -> float:
    """``t = idx / (L - 1)``; 0 for tensors outside the layers and one-layer slices."""
    if index_in_slice is None or slice_length <= 1:
        return 0.0
    return index_in_slice / (slice_length - 1)


def interpolate(anchors: Sequence[float], t: float) -> float:
    """The gradient value at ``t`` (mergekit's formula)."""
    if len(anchors) == 1:
        return float(anchors[0])
    s = t * (len(anchors) - 1)
    i = math.floor(s)
    frac = s - i
    i = min(i, len(anchors) - 1)
    return (1 - frac) * anchors[i] + frac * anchors[min(i + 1, len(anchors) - 1)]


def parse_anchors(text: str) -> list[float] | None:
    """``'[0, 0.5, 1]'`` or ``'0.5'``, typed by a person, as gradient anchors; None when it is not that."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [float(item) for item in items] if is_gradient(items) else None


def layer_values(anchors: Sequence[float], depth: int) -> list[float]:
    """The gradient's value at each of ``depth`` layers, anchors spread evenly from the first layer to the last."""
    return [interpolate(anchors, layer_position(layer, depth)) for layer in range(depth)]


def outside_value(component: str, anchors: Sequence[float]) -> float:
    """Where a per-layer curve puts a tensor outside the layers: embeddings before the first layer, the rest after."""
    return float(anchors[0] if component == "embed" else anchors[-1])


def is_conditions(value: Any) -> bool:
    """True for a list of ``{filter, value}`` mappings."""
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def is_gradient(value: Any) -> bool:
    """True for a non-empty list of numbers."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value)
    )


def evaluate(value: Any, place: TensorPlace) -> Any:
    """The value at one tensor, or None when no condition matches it."""
    if is_conditions(value):
        for condition in value:
            text = condition.get("filter")
            if text is None or str(text) in place.name:
                return evaluate(condition.get("value"), place)
        return None
    if is_gradient(value):
        return interpolate(value, place.position)
    return value


def resolve(name: str, levels: Sequence[dict[str, Any]], place: TensorPlace, default: Any) -> Any:
    """The first level (highest precedence first) that sets ``name`` for this tensor, else ``default``."""
    for level in levels:
        if name in level:
            value = evaluate(level[name], place)
            if value is not None:
                return value
    return default
