"""One merge per output folder: an exclusive lock on a file in ``OUT.partial``, held while the merge runs.

Two runs aimed at the same OUT (a second terminal, a cron job started
twice) would otherwise write the same partial folder. The lock is
``fcntl.flock`` on ``OUT.partial/.tui_merge.lock``, which holds the owner's
process id: the kernel releases it when the process ends however it ends,
so a crash never leaves a stale lock, and a second run names the first.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from tui_merge.errors import BadInputError


def partial_path(output: Path) -> Path:
    """Where an unfinished output lives: ``OUT.partial`` next to ``OUT``."""
    return output.with_name(output.name + ".partial")


LOCK_NAME = ".tui_merge.lock"


class OutputLock:
    """The lock of one partial folder, taken with ``acquire`` and kept until ``release``."""

    def __init__(self, partial: Path, output: Path) -> None:
        self.path = partial / LOCK_NAME
        self.output = output
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise BadInputError naming the process that holds it."""
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise BadInputError(busy_message(self.output, lock_holder(self.path.parent))) from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def forget(self) -> None:
        """Remove the lock file (still holding the lock), so the finished folder does not carry it."""
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Let go of the lock."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def lock_holder(partial: Path) -> int | None:
    """The process id holding the lock of ``partial``, or None when no merge holds it."""
    path = partial / LOCK_NAME
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(descriptor, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def busy_message(output: Path, holder: int | None) -> str:
    """The sentence for a second merge into an output another one is writing."""
    who = f"process {holder}" if holder and holder > 0 else "another process"
    return (
        f"Another tui-merge ({who}) is merging into {output} now; wait for it to end or choose another output folder."
    )
