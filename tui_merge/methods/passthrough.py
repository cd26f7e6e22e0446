"""Passthrough: one model's tensor unchanged (or scaled): the building block of layer stacking."""

from __future__ import annotations

import torch

from tui_merge.methods.inputs import MergeInputs


def passthrough(inputs: MergeInputs) -> torch.Tensor:
    """The single input times its ``scale``."""
    scale = inputs.params[0]["scale"]
    return inputs.tensors[0] if scale == 1 else inputs.tensors[0] * scale
