"""One merge per output folder: an exclusive lock taken before anything of the merge is created.

Two runs aimed at the same OUT (a second terminal, a cron job started twice,
two starts in the same instant) would otherwise write the same partial
folder. The lock is ``fcntl.flock`` on ``.OUT.tui-merge.lock`` beside OUT,
holding the owner's process id. It is taken first, before ``OUT.partial``
or any parent folder is created and before the output checks look for a
leftover, so of two starts exactly one goes on and the other is refused
naming the first, however their steps interleave. The kernel releases the
lock when its process ends however it ends, so a crash never leaves a stale
lock (only, at worst, the small file, which the next run takes over).

The owner removes the file as it lets go. A process that opened the file
just before that removal could lock a name that is no longer on the disk,
beside a newer run holding a fresh file of the same name; so the lock
counts only once the locked file is the one the name still points to.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tui_merge.errors import BadInputError

HOLDER_WAIT_SECONDS = 1.0
"""How long a refused start waits for the lock's owner to write its process id (it writes it just after locking)."""


def partial_path(output: Path) -> Path:
    """Where an unfinished output lives: ``OUT.partial`` next to ``OUT``."""
    output = Path(os.path.abspath(output))
    return output.with_name(output.name + ".partial")


def lock_path(output: Path) -> Path:
    """The lock file of an output: ``.OUT.tui-merge.lock`` in OUT's parent folder."""
    output = Path(os.path.abspath(output))
    return output.with_name(f".{output.name}.tui-merge.lock")


class OutputLock:
    """The lock of one output, taken with ``acquire`` and kept until ``release``."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.path = lock_path(output)
        self._descriptor: int | None = None
        self._created: list[Path] = []
        """Parent folders this lock created, removed again on release when the merge left them empty."""

    @property
    def held(self) -> bool:
        """True between ``acquire`` and ``release``."""
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock, or raise BadInputError naming the process that holds it (or the folder that cannot
        be written)."""
        self._make_parents()
        while True:
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as error:
                self._remove_created()
                raise BadInputError(
                    f"Cannot write in {self.path.parent} ({error.strerror}); choose an output folder where you may "
                    "create files."
                ) from None
            if not _lock_or_wait(descriptor):
                holder = _read_holder(descriptor)
                os.close(descriptor)
                self._remove_created()
                raise BadInputError(busy_message(self.output, holder)) from None
            if _still_named(descriptor, self.path):
                break
            os.close(descriptor)  # the previous owner removed it between our open and our lock: take the new one
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        """Let go of the lock and remove its file (and the parent folders it created, if the merge left them
        empty)."""
        if self._descriptor is None:
            return
        self.path.unlink(missing_ok=True)  # while still holding it: see the module's docstring
        os.close(self._descriptor)
        self._descriptor = None
        self._remove_created()

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()

    def _make_parents(self) -> None:
        missing = []
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as error:
                self._remove_created()
                raise BadInputError(
                    f"Cannot create the output's folder {folder} ({error.strerror}); choose an output folder where "
                    "you may create files."
                ) from None
            self._created.append(folder)

    def _remove_created(self) -> None:
        for folder in reversed(self._created):
            try:
                folder.rmdir()
            except OSError:
                break  # something was written there: keep it and every folder above it
        self._created = []


def _still_named(descriptor: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(descriptor)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _read_holder(descriptor: int) -> int | None:
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _lock_or_wait(descriptor: int) -> bool:
    """Take the exclusive lock; False when a merge holds it. A holder that has not written its pid yet is
    either a merge that has just locked (it writes at once) or ``lock_holder`` looking for a moment: both are
    given ``HOLDER_WAIT_SECONDS`` to say which."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if _read_holder(descriptor) is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def _wait_for_holder(descriptor: int) -> int | None:
    """The pid in a lock file whose owner may not have written it yet (it writes just after locking)."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while (holder := _read_holder(descriptor)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder


def lock_holder(output: Path) -> int | None:
    """The process id of the merge writing ``output`` now (-1 when its id cannot be read), or None when no
    merge holds its lock."""
    try:
        descriptor = os.open(lock_path(output), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _wait_for_holder(descriptor)
            return -1 if holder is None else holder
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def busy_message(output: Path, holder: int | None) -> str:
    """The sentence for a second merge into an output another one is writing."""
    who = f" (pid {holder})" if holder and holder > 0 else ""
    return f"Another tui-merge run{who} is writing {output}; wait for it to end or choose another output folder."
