"""Write-behind keeps a streamed file's dirty pages to a few windows: the write-back of each full window is
started at once, and the window two back is waited for."""

from __future__ import annotations

import os
import sys

import pytest

from tui_merge.engine import write_behind
from tui_merge.engine.write_behind import WriteBehind

WRITE, WAITED = 2, 1 | 2 | 4


def test_each_full_window_is_started_and_the_one_two_back_waited_for(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(write_behind, "_sync_file_range", lambda fd, offset, size, flags: calls.append(
        (offset, size, flags)) or 0)  # fmt: skip
    behind = WriteBehind(descriptor=7, window=100)
    behind.enabled = True
    behind.wrote(50)
    assert calls == []  # no full window yet
    behind.wrote(260)  # 310 bytes: three full windows
    assert calls == [(0, 100, WRITE), (100, 100, WRITE), (200, 100, WRITE), (0, 100, WAITED)]
    behind.wrote(90)  # 400: the fourth window, and the second waited for
    assert calls[4:] == [(300, 100, WRITE), (100, 100, WAITED)]


def test_a_file_system_that_refuses_it_turns_it_off(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(write_behind, "_sync_file_range", lambda *args: calls.append(args) or -1)
    behind = WriteBehind(descriptor=7, window=10)
    behind.enabled = True
    behind.wrote(100)
    assert len(calls) == 1 and not behind.enabled


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_on_linux_a_streamed_file_is_written_whole_through_it(tmp_path) -> None:
    path = tmp_path / "streamed.bin"
    pieces = [os.urandom(300_000) for _ in range(7)]
    with path.open("xb") as handle:
        behind = WriteBehind(handle.fileno(), window=1 << 20)
        assert behind.enabled
        for piece in pieces:
            handle.write(piece)
            behind.wrote(len(piece))
        handle.flush()
        os.fsync(handle.fileno())
    assert behind.enabled and behind.requested == 2 << 20  # two full windows of 2.1 MB
    assert path.read_bytes() == b"".join(pieces)
