"""Textual's Linux terminal driver, made safe for a terminal that hangs up under it.

Two things in the stock driver can hold the wizard forever after a lost SSH
session, and with it the merge it hands to the headless path:

- The kernel sends SIGCONT along with SIGHUP when a terminal hangs up. The
  stock driver takes every SIGCONT as "back from ctrl+z" and starts the full
  screen again, on the dead terminal, with a second output thread; that
  thread dies on its first write, its bounded queue fills, and the app's exit
  then waits to queue one more item forever. Here only a screen the driver
  suspended itself is resumed.
- Once the app knows its terminal is gone, output has nowhere to go: it is
  dropped, and leaving does not wait for an output thread that may have died
  on the dead terminal.

And one thing that can hold it on a live terminal: the stock driver suspends
and resumes the screen inside its SIGTSTP and SIGCONT handlers, which Python
runs in the main thread between two steps of whatever it was doing. When the
signal came while the main thread was inside the output queue's lock, the
handler's first write waited on that lock forever. Here both handlers only
put the stock handling on the app's loop, to run after the interrupted code.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from textual.drivers.linux_driver import LinuxDriver


class HangupSafeDriver(LinuxDriver):
    """The stock Linux driver, except after SIGCONT without a suspend, after the terminal hung up, and in that
    it handles SIGTSTP and SIGCONT on the app's loop."""

    suspended = False
    """True between suspending the screen (ctrl+z, or the app running another program) and resuming it."""
    terminal_gone = False
    """Set by the app once SIGHUP said the terminal is gone; from then on nothing is written to it."""

    def suspend_application_mode(self) -> None:
        self.suspended = True
        super().suspend_application_mode()

    def resume_application_mode(self) -> None:
        if not self.suspended or self.terminal_gone:
            return  # a continue signal nobody asked for: the kernel's, beside a hangup
        self.suspended = False
        super().resume_application_mode()

    def write(self, data: str) -> None:
        if not self.terminal_gone:
            super().write(data)

    def close(self) -> None:
        if not self.terminal_gone:
            super().close()

    def _sigtstp_application(self, *_: object) -> None:
        if not self._on_the_loop(super()._sigtstp_application):
            os.kill(os.getpid(), signal.SIGSTOP)  # the app has left: stop, as the signal's default does

    def _sigcont_application(self, *_: object) -> None:
        self._on_the_loop(super()._sigcont_application)

    def _on_the_loop(self, handling: Callable[[], None]) -> bool:
        """Run ``handling`` next on the app's loop; False when that loop is closed (the app has left)."""
        try:
            self._loop.call_soon_threadsafe(handling)
        except RuntimeError:
            return False
        return True
