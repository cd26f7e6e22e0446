"""Writing a large file at the disk's pace instead of in bursts: write-behind with ``sync_file_range``.

Linux lets written pages wait in memory (dirty) and throttles a process whose dirty pages pass its share of the
system's limit (``balance_dirty_pages``). A merge that writes gigabytes into the page cache and syncs only at
the end is throttled in bursts, hardest when another process writes to the same disk, and its final ``fsync``
then waits for everything at once. Asking the kernel to start writing each window as soon as it is full
(``SYNC_FILE_RANGE_WRITE``, which does not wait) and waiting for the window two back keeps at most three
windows of this file dirty: the writes flow to the disk while the next tensors are read and merged, and the
closing ``fsync`` has little left to do. The written pages stay in the page cache (a ``verify`` right after reads
them from there). Where ``sync_file_range`` is missing (not Linux), nothing changes.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

WINDOW = 32 << 20
"""Bytes per write-back request: large enough for sequential disk writes, small beside the dirty limits."""

_WAIT_BEFORE, _WRITE, _WAIT_AFTER = 1, 2, 4


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


class WriteBehind:
    """Told how many bytes went into a file opened for writing from offset 0, it keeps the file's dirty pages
    to a few windows."""

    def __init__(self, descriptor: int, window: int = WINDOW) -> None:
        self.descriptor, self.window = descriptor, window
        self.written = 0
        self.requested = 0
        """Bytes whose write-back has been started: whole windows from the start of the file."""
        self.enabled = _sync_file_range is not None

    def wrote(self, count: int) -> None:
        """``count`` more bytes were written; start the full windows' write-back and wait for the one two back."""
        self.written += count
        while self.enabled and self.written - self.requested >= self.window:
            self._call(self.requested, _WRITE)
            self.requested += self.window
            settled = self.requested - 3 * self.window
            if settled >= 0:
                self._call(settled, _WAIT_BEFORE | _WRITE | _WAIT_AFTER)

    def _call(self, offset: int, flags: int) -> None:
        if _sync_file_range(self.descriptor, offset, self.window, flags) != 0:
            self.enabled = False  # a file system that refuses it (some network ones): fsync at the end does it all
