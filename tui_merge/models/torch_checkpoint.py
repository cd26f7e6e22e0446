"""Open PyTorch ``.bin`` checkpoints safely and lazily.

A ``.bin`` file is a pickle, and unpickling can run arbitrary code. We only
ever call ``torch.load(weights_only=True)``, whose restricted unpickler
refuses anything but tensors and plain containers, so a crafted payload is
rejected before it runs. ``mmap=True`` maps the file instead of reading it:
shapes and dtypes come from the pickle, tensor bytes are only paged in if a
caller actually reads a tensor.

A mapped file that shrinks while it is read (a re-download over the model
during a merge) kills the process with SIGBUS, which no Python code can
catch. So the merge does not read tensors through the map:
``tensor_byte_ranges`` finds where each tensor's bytes lie in the zip
archive, and the reader reads them with positional reads like safetensors
data, where a file that ended early is a sentence. Tensors stored as
non-contiguous views (rare) keep being read through the map.
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


def tensor_byte_ranges(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """Where in ``path`` the bytes of each contiguous tensor of its mapped state dict lie: name -> (begin, end).

    The archive stores each storage as one uncompressed record; torch maps the
    file whole, so a storage's address less the mapping's start is its
    record's offset. The mapping's start is found by pairing the storages'
    addresses with the records' offsets, both in file order, and every pair
    must agree on it; if the layout is anything else (big-endian data, an
    unexpected archive), no ranges are given and every tensor is read through
    the map.
    """
    import torch

    try:
        with path.open("rb") as handle:
            archive = torch._C.PyTorchFileReader(handle)
            records = archive.get_all_records()
            if "byteorder" in records and bytes(archive.get_record("byteorder")).strip() != b"little":
                return {}
            offsets = sorted(archive.get_record_offset(name) for name in records if name.startswith("data/"))
    except (RuntimeError, OSError, AttributeError):  # AttributeError: a torch without this reader
        return {}
    addresses = sorted({tensor.untyped_storage().data_ptr() for tensor in tensors.values()})
    if not addresses or len(addresses) != len(offsets):
        return {}
    start = addresses[0] - offsets[0]
    if any(address - offset != start for address, offset in zip(addresses, offsets, strict=True)):
        return {}
    ranges = {}
    for name, tensor in tensors.items():
        if tensor.is_contiguous() and tensor.device.type == "cpu":
            begin = tensor.untyped_storage().data_ptr() - start + tensor.storage_offset() * tensor.element_size()
            ranges[name] = (begin, begin + tensor.numel() * tensor.element_size())
    return ranges


def safetensors_dtype(tensor: torch.Tensor) -> str:
    """The safetensors name of a tensor's dtype."""
    try:
        return TORCH_TO_SAFETENSORS_DTYPE[str(tensor.dtype)]
    except KeyError:
        raise BadInputError(f"Tensors of dtype {tensor.dtype} are not supported.") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
