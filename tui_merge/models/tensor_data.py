"""Read the data of a single tensor from a model, leaving the rest of the file alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui_merge.errors import BadInputError
from tui_merge.models.checkpoint import TensorEntry
from tui_merge.models.torch_checkpoint import load_torch_state_dict

if TYPE_CHECKING:
    import torch


def read_tensor(entry: TensorEntry) -> torch.Tensor:
    """Load one tensor's values into memory, as stored (no dtype conversion)."""
    if entry.begin is None:
        # The mapping is lazy: only this tensor's pages are read.
        return load_torch_state_dict(entry.file)[entry.name].clone()
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(entry.file, framework="pt") as handle:
            return handle.get_tensor(entry.name)
    except (SafetensorError, OSError) as error:
        raise BadInputError(f"Cannot read tensor {entry.name!r} from {entry.file}: {error}.") from error
