"""Read input tensors one at a time, straight from their byte ranges.

Safetensors data (and ``.bin`` data, whose byte ranges the checkpoint
reader finds) is read with positional reads into a fresh buffer sized for
the one tensor: no file stays mapped and memory is released as soon as the
tensor is dropped. A file that ends early (truncated or rewritten while the
merge runs) is ``InputChanged``, a sentence, never a SIGBUS. Files are opened
read-only; inputs are never modified.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import replace
from pathlib import Path

import torch

from tui_merge.errors import BadInputError
from tui_merge.models.checkpoint import TensorEntry
from tui_merge.models.torch_checkpoint import load_torch_state_dict

TORCH_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip


PREFETCH_STEP = 128 << 10
"""Bytes per read-ahead request: Linux reads at most one readahead window (``read_ahead_kb``, often 128 KiB) or
one device request per ``POSIX_FADV_WILLNEED`` and silently drops the rest, so a tensor is asked for in steps."""

BLOCK_BYTES = 2 << 20
"""Float32 bytes per input in one block of rows, wherever a large tensor is read a block at a time.

Small enough that a block's inputs, their float32 copies and the merged rows stay in the processor's cache
between the steps that touch them (convert, check, merge, cast, write): on a 2-core machine with 32 MiB of L3, a
linear merge of the 1b preset took 5.3-5.7 s with 8 MiB blocks, 3.8-4.4 s with 4 MiB and 3.6-4.9 s with 2 MiB;
below 1 MiB the per-block overhead wins again (4.5-5.3 s with 512 KiB)."""


def row_blocks(
    shape: tuple[int, ...], block_bytes: int = BLOCK_BYTES, values_multiple: int = 1
) -> list[tuple[int, int]]:
    """Row ranges of a tensor of ``shape`` (at least one dimension), each at most ``block_bytes`` of float32
    (and at least one row), every one but the last holding a multiple of ``values_multiple`` values (rows are
    added up to it: at most ``values_multiple - 1`` rows more, for rows whose width shares no factor with it)."""
    row_elements = 1
    for size in shape[1:]:
        row_elements *= size
    step = max(1, block_bytes // max(4 * row_elements, 1))
    rows_multiple = values_multiple // math.gcd(row_elements, values_multiple)  # gcd(0, v) is v: 1 row
    step = -(-step // rows_multiple) * rows_multiple
    return [(start, min(start + step, shape[0])) for start in range(0, shape[0], step)]


def rows_entry(entry: TensorEntry, start: int, stop: int) -> TensorEntry:
    """The table entry of rows ``start:stop`` of a stored tensor (row-major storage makes them one byte range)."""
    row_bytes = entry.nbytes // entry.shape[0] if entry.shape[0] else 0
    begin = entry.begin + start * row_bytes
    return TensorEntry(entry.name, entry.dtype, (stop - start, *entry.shape[1:]), entry.file, begin,
                       begin + (stop - start) * row_bytes)  # fmt: skip


def part_entry(entry: TensorEntry, index: int, count: int, shape: tuple[int, ...]) -> TensorEntry:
    """The table entry of part ``index`` of ``count`` equal consecutive byte ranges of a stored tensor, read as
    ``shape`` (one expert's gate matrix of a fused experts tensor)."""
    part_bytes = entry.nbytes // count
    begin = entry.begin + index * part_bytes
    return TensorEntry(entry.name, entry.dtype, shape, entry.file, begin, begin + part_bytes)


class InputChanged(BadInputError):
    """An input file shrank or changed while the merge read it; the merge stops with ``OUT.partial`` kept."""


class TensorReader:
    """Reads tensors by their table entries, keeping file descriptors open between reads."""

    def __init__(self) -> None:
        self._descriptors: dict[Path, int] = {}
        self._state_dicts: dict[Path, tuple[int, dict[str, torch.Tensor]]] = {}
        """Mapped ``.bin`` state dicts, with the file's size when it was mapped."""
        self.bytes_read = 0

    def read(self, entry: TensorEntry) -> torch.Tensor:
        """The tensor's values in its stored dtype (in float32 with a LoRA adapter's change added, or an FP8
        weight's block scales applied)."""
        if entry.lora is not None:
            return self.read(replace(entry, lora=None)).float().add_(entry.lora.delta(self))
        if entry.scale is not None:
            return entry.scale.apply(self.read(replace(entry, scale=None)), self, 0)
        self.bytes_read += entry.nbytes
        if entry.begin is None:
            return self._read_mapped(entry)
        dtype = TORCH_DTYPES[entry.dtype]
        if not entry.nbytes:
            return torch.empty(entry.shape, dtype=dtype)
        # torch.empty, not bytearray: the bytes are about to be overwritten, so zeroing them first is wasted work.
        buffer = torch.empty(entry.nbytes, dtype=torch.uint8)
        descriptor = self._descriptor(entry.file)
        view = memoryview(buffer.numpy())
        done = 0
        while done < entry.nbytes:
            count = os.preadv(descriptor, [view[done:]], entry.begin + done)
            if count == 0:
                raise InputChanged(
                    f"{entry.file} ended while reading tensor {entry.name!r}: the file was truncated or "
                    "rewritten during the merge"
                )
            done += count
        return buffer.view(dtype).reshape(entry.shape)

    def _read_mapped(self, entry: TensorEntry) -> torch.Tensor:
        """A tensor of a mapped ``.bin`` file, copied out of the map once the file is seen to be whole.

        Touching a page of a map whose file has shrunk is a SIGBUS, so the size
        is checked first and the bytes copied at once (a file cut short in
        between the two is the one case this cannot catch).
        """
        if entry.file not in self._state_dicts:
            size = self._size(entry)
            self._state_dicts[entry.file] = (size, load_torch_state_dict(entry.file))
        mapped_size, tensors = self._state_dicts[entry.file]
        if self._size(entry) < mapped_size:
            raise InputChanged(
                f"{entry.file} shrank while reading tensor {entry.name!r}: the file was truncated or rewritten "
                "during the merge"
            )
        return tensors[entry.name].clone()

    def _size(self, entry: TensorEntry) -> int:
        try:
            return entry.file.stat().st_size
        except OSError as error:
            reason = error.strerror or error
            raise InputChanged(f"{entry.file} went away while reading tensor {entry.name!r} ({reason})") from None

    def prefetch(self, entry: TensorEntry) -> None:
        """Ask the kernel to start reading a tensor's bytes now, so the read that follows finds them in memory.

        Called for the next tensor while this one merges: with a cold page
        cache, disk reads overlap the merge without a thread, and nothing
        about the bytes or their order changes. A no-op where the system has
        no ``posix_fadvise``.
        """
        if entry.begin is None or not entry.nbytes or not hasattr(os, "posix_fadvise"):
            return
        descriptor = self._descriptor(entry.file)
        with contextlib.suppress(OSError):  # a hint only: the read itself reports a real problem
            for start in range(entry.begin, entry.begin + entry.nbytes, PREFETCH_STEP):
                length = min(PREFETCH_STEP, entry.begin + entry.nbytes - start)
                os.posix_fadvise(descriptor, start, length, os.POSIX_FADV_WILLNEED)

    def read_rows(self, entry: TensorEntry, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor, reading only their bytes (row-major storage makes them one range)."""
        if entry.lora is not None:
            rows = self.read_rows(replace(entry, lora=None), start, stop).float()
            return rows.add_(entry.lora.delta(self, start, stop))
        if entry.scale is not None:
            return entry.scale.apply(self.read_rows(replace(entry, scale=None), start, stop), self, start)
        if entry.begin is None:
            return self.read(entry)[start:stop]
        return self.read(rows_entry(entry, start, stop))

    def _descriptor(self, path: Path) -> int:
        if path not in self._descriptors:
            try:
                self._descriptors[path] = os.open(path, os.O_RDONLY)
            except OSError as error:
                raise BadInputError(f"Cannot open {path}: {error.strerror}.") from error
        return self._descriptors[path]

    def close(self) -> None:
        """Close every open file."""
        for descriptor in self._descriptors.values():
            os.close(descriptor)
        self._descriptors.clear()
        self._state_dicts.clear()

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
