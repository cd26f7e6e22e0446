"""What a merge kernel receives for one output tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class MergeInputs:
    """The tensors to merge and the parameters resolved for this tensor."""

    tensors: list[torch.Tensor]
    """The models' tensors in config order, the base excluded when the method uses one."""
    params: list[dict[str, Any]]
    """Per-model parameters, one mapping per entry of ``tensors``."""
    base: torch.Tensor | None = None
    options: dict[str, Any] = field(default_factory=dict)
    """Global parameters."""
    generator: torch.Generator | None = None
    """Seeded for this tensor: the only source of randomness a kernel may use."""

    def per_model(self, name: str) -> list[Any]:
        """One per-model parameter for every model, in order."""
        return [params[name] for params in self.params]
