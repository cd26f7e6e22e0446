"""Run the tui-merge command line, sending this process a real signal once enough output is written.

    python tests/crash_at.py SIGKILL@60000 run merge.yaml out

The signal goes out right after the tensor that brings the bytes written to
at least the number given, so tests prove that a crash at a chosen point
leaves nothing at OUT and that ``--resume`` finishes byte for byte. The hook
wraps the executor's event callback from outside: the product has no fault
switch of its own.
"""

from __future__ import annotations

import os
import signal
import sys

from tui_merge.cli import main
from tui_merge.engine import executor
from tui_merge.engine.events import TensorMerged


def after_each_event(hook) -> None:
    """Make every merge of this process call ``hook(event)`` after its own callback, for each event."""
    real_execute = executor.execute

    def execute(*args, on_event=None, **kwargs):
        def hooked(event) -> None:
            if on_event is not None:
                on_event(event)
            hook(event)

        return real_execute(*args, on_event=hooked, **kwargs)

    executor.execute = execute


def crash_at(fault: str) -> None:
    """Make every merge of this process send ``SIGNAL`` to itself once ``BYTES`` (``SIGNAL@BYTES``) are written."""
    name, _, limit = fault.partition("@")
    sent = False

    def send(event) -> None:
        nonlocal sent
        if isinstance(event, TensorMerged) and event.bytes_written and event.bytes_done >= int(limit) and not sent:
            sent = True
            os.kill(os.getpid(), getattr(signal, name))

    after_each_event(send)


if __name__ == "__main__":
    if sys.argv[1].startswith("SIGINT@"):
        # A Ctrl-C from a terminal: a test suite run as a background job inherits SIGINT ignored, which the
        # command (rightly, as under nohup) would heed.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    crash_at(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
