"""Do two models descend from the same pretrained base? Compare one small tensor.

Fine-tuning moves weights only a little, so the cosine similarity of a
fine-tune's weights with its base's stays close to 1. Two independent
pretraining runs start from different random weights, and their tensors are
close to orthogonal: similarity near 0. Merging such models averages
unrelated coordinates and produces noise. One attention matrix of the first
block is enough to tell, and reading it costs milliseconds even at 70B.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_merge.models.info import ModelInfo
from tui_merge.models.tensor_data import read_float64

SAME_BASE_THRESHOLD = 0.9
"""At or above: fine-tunes of one base."""
UNRELATED_THRESHOLD = 0.3
"""Below: no shared base. In between: distant relatives (e.g. a long continued pretraining)."""

_PREFERRED_COMPONENTS = ("attn", "mlp")


@dataclass(frozen=True)
class LineageProbe:
    """The similarity of one model's probe tensor to the base's."""

    tensor: str
    similarity: float | None
    """Cosine similarity; None when either tensor is all zeros."""


def probe_tensor_name(models: list[ModelInfo]) -> str | None:
    """The smallest 2-D attention (else MLP) matrix of the first block that all models share."""
    first = models[0]
    shared = [
        name
        for name, entry in first.tensors.items()
        if len(entry.shape) == 2
        and first.roles[name].layer is not None
        and all(name in other.tensors and other.tensors[name].shape == entry.shape for other in models[1:])
    ]
    for component in _PREFERRED_COMPONENTS:
        candidates = [name for name in shared if first.roles[name].component == component]
        if candidates:
            lowest = min(first.roles[name].layer for name in candidates)
            in_lowest = [name for name in candidates if first.roles[name].layer == lowest]
            return min(in_lowest, key=lambda name: (first.tensors[name].numel, name))
    return None


def compare_lineage(base: ModelInfo, other: ModelInfo, tensor: str) -> LineageProbe:
    """Cosine similarity of ``tensor`` in ``other`` against ``base``, reading only that tensor."""
    import numpy

    reference = read_float64(base.tensors[tensor])
    candidate = read_float64(other.tensors[tensor])
    norms = float(numpy.linalg.norm(reference)) * float(numpy.linalg.norm(candidate))
    if norms == 0.0:
        return LineageProbe(tensor, None)
    return LineageProbe(tensor, float(numpy.dot(reference, candidate)) / norms)
