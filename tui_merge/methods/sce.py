"""SCE (select, calculate, erase), from FuseChat: variance-selected, energy-weighted, sign-elected."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def sce(inputs: MergeInputs) -> torch.Tensor:
    """Keep the ``select_topk`` highest-variance positions, weight by mean square, elect signs."""
    base = inputs.base
    deltas = torch.stack([tensor - base for tensor in inputs.tensors])
    select = inputs.options["select_topk"]
    if select < 1:
        variance = deltas.var(dim=0, unbiased=False)
        keep = int(select * int(torch.count_nonzero(variance)))
        mask = torch.zeros(variance.numel(), dtype=deltas.dtype, device=deltas.device)
        if keep > 0:
            mask[torch.topk(variance.flatten(), keep).indices] = 1
        deltas = deltas * mask.view(variance.shape)
    energy = deltas.flatten(1).pow(2).mean(dim=1)
    total = float(energy.sum())
    weights = energy / total if total > 0 else torch.full_like(energy, 1 / len(energy))
    weights = weights.view(-1, *([1] * base.dim()))
    elected = torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0)
    kept_weights = weights * (deltas.sign() == elected)
    divisor = kept_weights.sum(dim=0)
    divisor = torch.where(divisor == 0, torch.ones_like(divisor), divisor)
    return base + (deltas * kept_weights).sum(dim=0) / divisor
