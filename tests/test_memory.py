"""The allocator setting that lets a merge reuse freed memory, and its undoing when the merge ends."""

import ctypes
import ctypes.util
import platform
import sys

import pytest

from tui_merge.engine.memory import allocator_for_merging

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only"
)

BIG = 64 << 20
"""Larger than glibc's largest mmap threshold (32 MiB): by default such a block is mmapped."""


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
    )]  # fmt: skip


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("this glibc has no mallinfo2")
    libc.mallinfo2.restype = _Mallinfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    return libc


def _mmapped_blocks_for_a_big_allocation(libc: ctypes.CDLL) -> int:
    """How many more mmapped blocks malloc holds while one BIG block is allocated."""
    before = libc.mallinfo2().hblks
    block = libc.malloc(BIG)
    try:
        return libc.mallinfo2().hblks - before
    finally:
        libc.free(block)


def test_inside_a_merge_big_blocks_come_from_the_heap_and_afterwards_from_mmap_again() -> None:
    libc = _libc()
    assert _mmapped_blocks_for_a_big_allocation(libc) == 1

    with allocator_for_merging() as applied:
        assert applied
        assert _mmapped_blocks_for_a_big_allocation(libc) == 0

    assert _mmapped_blocks_for_a_big_allocation(libc) == 1


def test_leaving_a_merge_returns_the_kept_heap_to_the_system() -> None:
    libc = _libc()
    with allocator_for_merging():
        block = libc.malloc(BIG)
        libc.free(block)
        kept = libc.mallinfo2().arena  # freed inside the merge, the heap keeps it for the next tensor

    assert kept - libc.mallinfo2().arena >= BIG // 2  # trimmed on the way out
