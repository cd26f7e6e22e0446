"""Do two models descend from the same pretrained base? Compare a few small tensors.

Fine-tuning moves weights only a little, so the cosine similarity of a
fine-tune's weights with its base's stays close to 1. Two independent
pretraining runs start from different random weights, and their tensors are
close to orthogonal: similarity near 0. Merging such models averages
unrelated coordinates and produces noise. A small matrix of the first block
is enough to tell, and reading it costs milliseconds even at 70B.

One matrix can mislead: a family may start one of them at zero or at a
constant (then two fine-tunes of one base hold only their own changes there,
near orthogonal), and a model may have no attention or MLP at all (a state
space model). So up to three matrices are compared, of different kinds (the
smallest attention matrix, the smallest MLP matrix, and the smallest other
matrix of the lowest block, whatever the model has), a constant one is
skipped, and the most similar one speaks: unrelated models are near 0 on
every matrix, relatives near 1 on any matrix the base actually trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_merge.models.info import ModelInfo
from tui_merge.models.tensor_data import read_float64

SAME_BASE_THRESHOLD = 0.9
"""At or above: fine-tunes of one base."""
UNRELATED_THRESHOLD = 0.3
"""Below: no shared base. In between: distant relatives (e.g. a long continued pretraining)."""

_PROBE_KINDS = ("attn", "mlp", None)
"""One probe of each kind, in this order; None: any other matrix in a block."""


@dataclass(frozen=True)
class LineageProbe:
    """The similarity of one model's probe tensor to the base's."""

    tensor: str
    similarity: float | None
    """Cosine similarity; None when either tensor is constant (all zeros, all ones) and so tells nothing."""


def probe_tensor_names(models: list[ModelInfo]) -> list[str]:
    """Up to three 2-D matrices of the lowest block that all models share: the smallest attention matrix, the
    smallest MLP matrix, and the smallest other one (each where there is one)."""
    first = models[0]
    shared = [
        name
        for name, entry in first.tensors.items()
        if len(entry.shape) == 2
        and first.roles[name].layer is not None
        and all(name in other.tensors and other.tensors[name].shape == entry.shape for other in models[1:])
    ]
    probes = []
    for kind in _PROBE_KINDS:
        candidates = [name for name in shared if (first.roles[name].component == kind) == (kind is not None)
                      and (kind is not None or first.roles[name].component not in ("attn", "mlp"))]  # fmt: skip
        if candidates:
            lowest = min(first.roles[name].layer for name in candidates)
            in_lowest = [name for name in candidates if first.roles[name].layer == lowest]
            probes.append(min(in_lowest, key=lambda name: (first.tensors[name].numel, name)))
    return probes


def probe_tensor_name(models: list[ModelInfo]) -> str | None:
    """The first probe (``probe_tensor_names``), or None when the models share no matrix in a block."""
    names = probe_tensor_names(models)
    return names[0] if names else None


def compare_lineage(base: ModelInfo, other: ModelInfo, tensors: str | list[str]) -> LineageProbe:
    """The most similar of ``tensors`` in ``other`` against ``base`` (constant ones skipped), reading only them."""
    import numpy

    best = None
    for tensor in [tensors] if isinstance(tensors, str) else tensors:
        reference = read_float64(base.tensors[tensor])
        candidate = read_float64(other.tensors[tensor])
        if _constant(reference) or _constant(candidate):
            probe = LineageProbe(tensor, None)
        else:
            norms = float(numpy.linalg.norm(reference)) * float(numpy.linalg.norm(candidate))
            probe = LineageProbe(tensor, float(numpy.dot(reference, candidate)) / norms)
        if best is None or (probe.similarity is not None and (best.similarity is None or
                                                              probe.similarity > best.similarity)):  # fmt: skip
            best = probe
    return best


def _constant(values) -> bool:
    """True for a tensor whose values are all one number (zeros, ones): its direction says nothing of lineage."""
    return values.size == 0 or float(values.max()) == float(values.min())
