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
    generators: list[torch.Generator] = field(default_factory=list)
    """One generator per model, when the caller gives them: a model's draws then do not depend on how many
    values the other models drew, so a tensor merged a block of rows at a time draws exactly what it would
    whole."""

    def generator_for(self, index: int) -> torch.Generator | None:
        """The generator model ``index`` draws from: its own when given, else the shared one."""
        return self.generators[index] if self.generators else self.generator

    def per_model(self, name: str) -> list[Any]:
        """One per-model parameter for every model, in order."""
        return [params[name] for params in self.params]
