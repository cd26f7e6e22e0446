"""What a front end can do to a running merge: pause it, resume it, or stop it.

The merge checks its control between blocks of rows and between tensors
(``checkpoint``), so a pause takes effect within one block (2 MiB of float32 rows
per input) even inside a large tensor, and a stop leaves nothing behind.
The wizard pauses while it asks whether to cancel; the console front end
stops on a signal. Every method is thread-safe: the merge runs in a worker
thread or under a signal handler's feet.
"""

from __future__ import annotations

import threading


class MergeControl:
    """Pause, resume and stop for one merge; a stopped control stays stopped."""

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self.keeps_partial = False
        """True when the stop keeps ``OUT.partial`` for a resume, whatever the job said (a hangup hands the
        wizard's merge to the headless path, which resumes it)."""

    def stop(self, *, keep_partial: bool = False) -> None:
        """Stop at the next checkpoint (a paused merge wakes up to stop); ``keep_partial`` keeps the finished
        shards for a resume."""
        self.keeps_partial = self.keeps_partial or keep_partial
        self._stopped.set()
        self._running.set()

    def pause(self) -> None:
        """Hold the merge at the next checkpoint until ``resume`` or ``stop``."""
        if not self._stopped.is_set():
            self._running.clear()

    def resume(self) -> None:
        """Let a paused merge go on."""
        self._running.set()

    @property
    def stopped(self) -> bool:
        """True once ``stop`` was called."""
        return self._stopped.is_set()

    @property
    def paused(self) -> bool:
        """True between ``pause`` and ``resume`` or ``stop``."""
        return not self._running.is_set()

    def checkpoint(self) -> bool:
        """Called by the merge between steps: wait while paused; True when the merge must stop."""
        self._running.wait()
        return self._stopped.is_set()
