"""While a merge runs, serve large tensors from memory the process already holds, not from fresh pages.

A merge allocates and frees tensors of several MiB thousands of times. glibc
serves every block above its mmap threshold (which it raises to 32 MiB at
most) with new pages from ``mmap`` and hands them back on ``free``, so each
such tensor pays a page fault (and the kernel zeroing the page) per 4 KiB
the first time it is written. ``allocator_for_merging`` tells malloc to
serve large blocks from its heap, to keep what is freed and to use one
arena, so the next tensor of the same size reuses warm pages.

The setting is scoped to the merge: on leaving, glibc's documented defaults
come back (at most 65536 mmapped blocks, trim above 128 KiB, arenas by core
count) and ``malloc_trim`` returns the kept heap to the system, so the
wizard that ran the merge, or a test session, does not keep a merge-sized
heap. One thing cannot be undone: once set, glibc no longer moves its mmap
threshold by itself. Where the C library has no ``mallopt`` (macOS,
Windows, musl) nothing changes.

It still earned its place once large tensors merged in 8 MiB blocks (before today's 2 MiB),
though far less than before blocks (a third of a TIES merge then).
Measured 2026-11-30 with ``benchmarks/merge_speed.py --preset 0.5b
--methods linear,ties2 --repeat 3`` (2 cores, medians), with and without it:
linear 4.77 s / 363 MiB peak against 4.94 s / 315 MiB, ties with two
fine-tunes 13.83 s / 505 MiB against 14.64 s / 488 MiB: some 4% faster for
up to 50 MiB more peak memory. With 2 MiB blocks it is worth less again:
on the 1b preset inside the process, linear 2.25 s with it against 2.30 and
2.39 s without, ties with two fine-tunes 24.7 s against 25.7 s, the same
peak memory (2026-11-30, one or two runs each: within this machine's noise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_KEEP_FREED = 2**31 - 1
"""Bytes of free memory at the top of the heap kept rather than returned to the system (the largest allowed)."""

_FOR_MERGING = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEEP_FREED), (_M_ARENA_MAX, 1))
"""No mmapped blocks, keep what is freed, one arena: memory freed by one thread is reused by the next."""
_GLIBC_DEFAULTS = ((_M_MMAP_MAX, 65536), (_M_TRIM_THRESHOLD, 128 * 1024), (_M_ARENA_MAX, 0))
"""What ``mallopt(3)`` documents as glibc's defaults (0 arenas: as many as the cores call for)."""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is None or not hasattr(libc, "mallopt"):
            return None
    except OSError:
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return libc


def _apply(libc: ctypes.CDLL, settings: tuple[tuple[int, int], ...]) -> bool:
    return all(libc.mallopt(option, value) == 1 for option, value in settings)


@contextmanager
def allocator_for_merging() -> Iterator[bool]:
    """Reuse freed memory for large blocks inside the ``with``; yields whether the C library agreed."""
    libc = _libc()
    applied = libc is not None and _apply(libc, _FOR_MERGING)
    try:
        yield applied
    finally:
        if applied:
            _apply(libc, _GLIBC_DEFAULTS)
            if hasattr(libc, "malloc_trim"):
                libc.malloc_trim(0)
