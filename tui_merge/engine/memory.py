"""Serve large tensors from memory the process already holds, not from fresh pages.

A merge allocates and frees tensors of tens of MiB thousands of times. glibc
serves every block above its mmap threshold (which it raises to 32 MiB at
most) with new pages from ``mmap`` and hands them back on ``free``, so each
such tensor pays a page fault (and the kernel zeroing the page) per 4 KiB
the first time it is written: on the 1b benchmark that was a third of a
TIES merge's time. Telling malloc to serve
large blocks from its heap and to keep what is freed lets the next tensor of
the same size reuse warm pages. Peak memory stays what the merge needs at
once; the heap is not shrunk while the process runs. Where the C library has
no ``mallopt`` (macOS, Windows, musl without it) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_KEEP_FREED = 2**31 - 1
"""Bytes of free memory at the top of the heap kept rather than returned to the system (the largest allowed)."""

_done = False


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed memory for large blocks; True when it agreed. Idempotent."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # One arena for all threads: memory freed by one thread is reused by the next, whichever it is.
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP_FREED), (_M_ARENA_MAX, 1))
    _done = all(mallopt(option, value) == 1 for option, value in settings)
    return _done
