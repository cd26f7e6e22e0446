"""Read the data of a single tensor from a model, leaving the rest of the file alone."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tui_merge.errors import BadInputError
from tui_merge.models.checkpoint import TensorEntry

if TYPE_CHECKING:
    import numpy
    import torch

_NUMPY_FLOATS = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}


def read_tensor(entry: TensorEntry) -> torch.Tensor:
    """Load one tensor's values into memory, as stored (no dtype conversion), the way the merge reads it
    (``models.reader``): only its own bytes, a file that ended early a sentence."""
    from tui_merge.models.reader import TensorReader

    with TensorReader() as reader:
        return reader.read(entry)


def read_float64(entry: TensorEntry) -> numpy.ndarray:
    """One floating-point tensor's values as a flat float64 array.

    A plain stored tensor (safetensors, or a ``.bin`` one whose bytes were
    located) is read with numpy from its own bytes (by range from the Hub
    when its file is not downloaded), so a question about one tensor
    (``inspect``'s lineage) does not wait a second for torch to load;
    anything else (an adapter's update, bfloat16 in a mapped ``.bin``) goes
    through the merge's reader.
    """
    import numpy

    if (
        entry.lora is None
        and entry.scale is None
        and entry.begin is not None
        and entry.dtype in (*_NUMPY_FLOATS, "BF16")
    ):
        if not entry.downloaded:
            from tui_merge.models.hub import file_name

            data = entry.hub.read_range(file_name(entry.hub, entry.file), entry.begin, entry.end)
        else:
            try:
                with entry.file.open("rb") as handle:
                    data = os.pread(handle.fileno(), entry.nbytes, entry.begin)
            except OSError as error:
                raise BadInputError(f"Cannot read {entry.file}: {error.strerror or error}.") from None
        if len(data) != entry.nbytes:
            raise BadInputError(
                f"{entry.file} ended while reading tensor {entry.name!r}: the file was truncated or rewritten"
            )
        if entry.dtype == "BF16":  # the high half of a float32
            return (numpy.frombuffer(data, "<u2").astype("<u4") << 16).view("<f4").astype(numpy.float64)
        return numpy.frombuffer(data, _NUMPY_FLOATS[entry.dtype]).astype(numpy.float64)
    return read_tensor(entry).double().flatten().numpy()
