"""Run the tui-merge command line with its merge held after the first tensor until a file appears.

    python tests/pause_at.py FOLDER run merge.yaml out

Once the first tensor is merged the hook writes ``FOLDER/merging`` and waits
(up to two minutes) for ``FOLDER/go``: a test does what it wants to the
running process meanwhile (closes its terminal, sends it a signal) and then
lets it go on. The hook wraps the executor from outside, as ``crash_at.py``
does: the product has no fault switch of its own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from crash_at import after_each_event

from tui_merge.engine.events import TensorMerged

WAIT_SECONDS = 120


def hold_after_first_tensor(folder: Path) -> None:
    """Make every merge of this process wait for ``folder/go`` once it has merged one tensor."""
    held = False

    def hold(event) -> None:
        nonlocal held
        if isinstance(event, TensorMerged) and not held:
            held = True
            (folder / "merging").write_text("")
            deadline = time.monotonic() + WAIT_SECONDS
            while not (folder / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    after_each_event(hold)


if __name__ == "__main__":
    hold_after_first_tensor(Path(sys.argv[1]))
    from tui_merge.cli import main

    sys.exit(main(sys.argv[2:]))
