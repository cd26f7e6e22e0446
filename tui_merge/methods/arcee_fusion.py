"""Arcee Fusion: keep only the other model's changes whose importance is an upper outlier.

Importance of a value is ``|other - base|`` times the KL divergence of the
softmaxed rows; the threshold is Tukey's fence ``median + 1.5 IQR``. Quantiles
are exact (mergekit samples a million values at random for large tensors),
so the result does not depend on chance.
"""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def _quantile(sorted_values: torch.Tensor, fraction: float) -> torch.Tensor:
    return sorted_values[int(fraction * (sorted_values.numel() - 1))]


def arcee_fusion(inputs: MergeInputs) -> torch.Tensor:
    """``base + (other - base) * [importance >= median + 1.5 IQR]``."""
    base, other = inputs.base, inputs.tensors[0]
    eps = 1e-8
    p = torch.softmax(other, dim=-1) + eps
    q = torch.softmax(base, dim=-1) + eps
    divergence = (p * torch.log(p / q)).sum(dim=-1)
    importance = (other - base).abs() * divergence.unsqueeze(-1)
    ordered = importance.flatten().sort().values
    q1, median, q3 = (_quantile(ordered, fraction) for fraction in (0.25, 0.5, 0.75))
    mask = importance >= median + 1.5 * (q3 - q1)
    return base + (other - base) * mask
