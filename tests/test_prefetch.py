"""The next tensor's bytes are asked for whole while this one merges: a cold page cache is read ahead in full.

Linux reads at most one readahead window (or one device request) per ``POSIX_FADV_WILLNEED`` and drops the rest
of the range without a word, so a 24 MiB tensor asked for at once had only its first 4-8 MiB read ahead.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
import time
from pathlib import Path

import pytest

from tui_merge.models.checkpoint import TensorEntry
from tui_merge.models.reader import TensorReader

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page residency is read with mincore")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def resident_pages(path: Path, start: int, length: int) -> int:
    """How many pages of ``path``'s bytes ``start:start+length`` are in the page cache (mincore; maps, reads
    nothing)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, handle.fileno(), 0)
    assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vector = (ctypes.c_ubyte * pages)()
        assert _libc.mincore(address + start, length, vector) == 0, os.strerror(ctypes.get_errno())
        return sum(byte & 1 for byte in vector)
    finally:
        _libc.munmap(address, size)


def test_a_tensor_is_read_ahead_whole(tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    start, length = 8 * mmap.PAGESIZE, 24 << 20  # a tensor of 24 MiB after the header
    with path.open("wb") as handle:
        handle.write(os.urandom(start + length + 4 * mmap.PAGESIZE))
        handle.flush()
        os.fsync(handle.fileno())  # clean pages, which the next call may drop
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    pages = length // mmap.PAGESIZE
    if resident_pages(path, start, length) == pages:
        pytest.skip(f"{tmp_path} keeps every page in memory (tmpfs): nothing to read ahead")

    reader = TensorReader()
    reader.prefetch(TensorEntry("weight", "U8", (length,), path, begin=start, end=start + length))
    deadline = time.monotonic() + 60  # it is reading in the background; this only bounds a broken read-ahead
    while resident_pages(path, start, length) < pages and time.monotonic() < deadline:
        time.sleep(0.05)
    reader.close()

    assert resident_pages(path, start, length) == pages
