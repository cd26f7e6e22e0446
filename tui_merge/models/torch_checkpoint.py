"""Open PyTorch ``.bin`` checkpoints safely and lazily.

A ``.bin`` file is a pickle, and unpickling can run arbitrary code. We only
ever call ``torch.load(weights_only=True)``, whose restricted unpickler
refuses anything but tensors and plain containers, so a crafted payload is
rejected before it runs. ``mmap=True`` maps the file instead of reading it:
shapes and dtypes come from the pickle, tensor bytes are only paged in if a
caller actually reads a tensor.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from tui_merge.errors import BadInputError

if TYPE_CHECKING:
    import torch

TORCH_TO_SAFETENSORS_DTYPE = {
    "torch.float64": "F64", "torch.float32": "F32", "torch.float16": "F16", "torch.bfloat16": "BF16",
    "torch.float8_e4m3fn": "F8_E4M3", "torch.float8_e5m2": "F8_E5M2", "torch.int64": "I64",
    "torch.int32": "I32", "torch.int16": "I16", "torch.int8": "I8", "torch.uint8": "U8", "torch.bool": "BOOL",
}  # fmt: skip
"""Names of torch dtypes in the safetensors vocabulary the rest of the project speaks."""


def load_torch_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Map a ``.bin`` checkpoint and return its tensors by name, refusing anything but tensors."""
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError as error:
        raise BadInputError(
            f"{path} contains Python objects other than tensors, which could run code when loaded; "
            "tui-merge refuses it. Use a safetensors copy of this model from a source you trust."
        ) from error
    except (RuntimeError, EOFError, ValueError, OSError) as error:
        raise BadInputError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(error)}); it is damaged, truncated, "
            "or in the legacy pre-1.6 format: download it again or convert it to safetensors."
        ) from error
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(
        isinstance(name, str) and isinstance(value, torch.Tensor) for name, value in loaded.items()
    ):
        raise BadInputError(f"{path} is not a mapping of tensor names to tensors, so it is not a model checkpoint.")
    return loaded


def safetensors_dtype(tensor: torch.Tensor) -> str:
    """The safetensors name of a tensor's dtype."""
    try:
        return TORCH_TO_SAFETENSORS_DTYPE[str(tensor.dtype)]
    except KeyError:
        raise BadInputError(f"Tensors of dtype {tensor.dtype} are not supported.") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
