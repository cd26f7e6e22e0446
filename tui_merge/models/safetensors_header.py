"""Read and validate the header of a safetensors file without touching tensor data.

We parse the header ourselves instead of going through ``safetensors.safe_open``
for two reasons: the streaming engine needs each tensor's absolute byte range
in the file, and a damaged download must produce one sentence that names the
file and what is wrong with it, which the library's errors do not. The format
is small and fixed: an 8-byte little-endian header length, a JSON object
mapping names to ``{dtype, shape, data_offsets}``, then the tensor bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.models.json_file import parse_json_object

DTYPE_SIZES: dict[str, int] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
"""Bytes per element for each safetensors dtype name."""

FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})

MAX_HEADER_BYTES = 32 << 20
"""The largest header read. The format allows 100,000,000 bytes, far beyond any real file: a header holds
about 130 bytes per tensor (name, dtype, shape, offsets), so a shard of today's largest index-split
checkpoints (Kimi K2's 1T parameters: about 141,000 tensors counting FP8 scales, in 62 shards) has a
header of a few hundred KB, and even all of K2's tensors in one file would need about 18 MB. 32 MiB
leaves room for 250,000 tensors in one file; beyond it a header is padding or hostile, and parsing
100 MB of JSON for every shard of every input would cost seconds and gigabytes for nothing."""


@dataclass(frozen=True)
class HeaderEntry:
    """One tensor as a safetensors header describes it."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    """Absolute byte offset of the tensor's first byte in the file."""
    end: int
    """Absolute byte offset one past the tensor's last byte."""


def read_safetensors_header(path: Path) -> dict[str, HeaderEntry]:
    """Return every tensor of a safetensors file, checked against the file's size."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            header_len = header_length(path, prefix, size)
            raw = handle.read(header_len)
    except OSError as error:
        raise BadInputError(f"Cannot read {path}: {error.strerror or error}.") from error
    return parse_header(path, header_len, raw, size)


def header_length(where: Path | str, prefix: bytes, size: int) -> int:
    """The header length that a safetensors file of ``size`` bytes declares in its first 8 bytes ``prefix``,
    checked: ``where`` names the file (a path, or a file of a Hub repository) in the sentence."""
    if len(prefix) < 8:
        raise BadInputError(
            f"{where} is {size} bytes, too short to be a safetensors file; "
            "it is empty or truncated: download or copy it again."
        )
    (header_len,) = struct.unpack("<Q", prefix[:8])
    if header_len > MAX_HEADER_BYTES and header_len <= size - 8:
        raise BadInputError(
            f"{where} declares a {header_len}-byte header, more than the {MAX_HEADER_BYTES >> 20} MiB any "
            "real checkpoint needs (about 130 bytes a tensor); the file is padded or damaged: download it "
            "again or save it with safetensors."
        )
    if header_len > size - 8:
        raise BadInputError(
            f"{where} declares a {header_len}-byte header but the file holds {size} bytes; "
            "it is truncated or not a safetensors file: download or copy it again."
        )
    return header_len


def parse_header(where: Path | str, header_len: int, raw: bytes, size: int) -> dict[str, HeaderEntry]:
    """Every tensor of the header ``raw`` (the JSON after the length) of a ``size``-byte file, checked."""
    header = parse_json_object(raw, f"The header of {where}", "the file is damaged or not safetensors")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise BadInputError(f"{where} has __metadata__ that is not a map of text to text; the file is damaged.")
    data_start = 8 + header_len
    entries = {
        name: _entry(where, name, spec, data_start, size) for name, spec in header.items() if name != "__metadata__"
    }
    _check_no_overlap(where, entries)
    return entries


def _is_count(value: object) -> bool:
    """A JSON integer that can count bytes or elements (not a bool, not negative, not absurd)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


def _entry(path: Path | str, name: str, spec: object, data_start: int, size: int) -> HeaderEntry:
    dtype = spec.get("dtype") if isinstance(spec, dict) else None
    shape = spec.get("shape") if isinstance(spec, dict) else None
    offsets = spec.get("data_offsets") if isinstance(spec, dict) else None
    if (
        not isinstance(dtype, str)
        or not isinstance(shape, list)
        or not all(_is_count(dim) for dim in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(offset) for offset in offsets)
        or offsets[0] > offsets[1]
    ):
        raise BadInputError(
            f"{path} describes tensor {name!r} without a valid dtype (text), shape (whole numbers of at least 0) "
            "and data_offsets (begin <= end); the file is damaged."
        )
    shape = tuple(shape)
    begin, end = offsets
    if dtype not in DTYPE_SIZES:
        raise BadInputError(f"{path} stores tensor {name!r} as {dtype!r}, a dtype tui-merge does not know.")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected or begin < 0:
        raise BadInputError(
            f"{path} gives tensor {name!r} {end - begin} bytes but its shape {list(shape)} in {dtype} "
            f"needs {expected}; the file is damaged."
        )
    if data_start + end > size:
        raise BadInputError(
            f"{path} is truncated: tensor {name!r} ends at byte {data_start + end} but the file has "
            f"{size} bytes; download or copy it again."
        )
    return HeaderEntry(dtype=dtype, shape=shape, begin=data_start + begin, end=data_start + end)


def _check_no_overlap(path: Path | str, entries: dict[str, HeaderEntry]) -> None:
    """Refuse two tensors that claim the same bytes: one of them would be merged from the other's values."""
    placed = sorted((entry.begin, entry.end, name) for name, entry in entries.items() if entry.end > entry.begin)
    for (_, first_end, first), (second_begin, _, second) in zip(placed, placed[1:]):
        if second_begin < first_end:
            raise BadInputError(
                f"{path} places tensors {first!r} and {second!r} on overlapping bytes; the file is damaged."
            )
