"""Read the data of a single tensor from a model, leaving the rest of the file alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui_merge.models.checkpoint import TensorEntry

if TYPE_CHECKING:
    import torch


def read_tensor(entry: TensorEntry) -> torch.Tensor:
    """Load one tensor's values into memory, as stored (no dtype conversion), the way the merge reads it
    (``engine.reader``): only its own bytes, a file that ended early a sentence."""
    from tui_merge.engine.reader import TensorReader

    with TensorReader() as reader:
        return reader.read(entry)
