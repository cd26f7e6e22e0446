"""The output's disk fills while a shard is being written or finished: one sentence, exit 1, a resumable partial.

The fault comes either from a hook at each step of finishing a shard (its
flush, sync and close) or from a real filesystem: a small tmpfs that another
process fills once the first shard is on it (where this machine lets a test
mount one).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import folder_digest

from tui_merge.cli import main

CONFIG = "merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\ntui_merge: {{shard_size: 30KB}}\n"


@pytest.fixture()
def recipe(tmp_path: Path, llama_base: Path, llama_finetune: Path) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(CONFIG.format(a=llama_base, b=llama_finetune))
    return path


@pytest.fixture()
def reference(tmp_path: Path, recipe: Path) -> dict[str, str]:
    assert main(["run", str(recipe), str(tmp_path / "reference")]) == 0
    return folder_digest(tmp_path / "reference")


class _FailingFile:
    """A shard file whose ``step`` (flush, fsync or close) finds the disk full."""

    def __init__(self, file, step: str) -> None:
        self._file, self._step = file, step

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def flush(self) -> None:
        self._fail("flush")
        self._file.flush()

    def fileno(self) -> int:
        self._fail("fsync")
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()  # the descriptor is let go as a real close does, then the error shows
        self._fail("close")

    def _fail(self, step: str) -> None:
        if step == self._step:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("step", ["flush", "fsync", "close"])
def test_a_full_disk_while_a_shard_is_finished_keeps_the_partial_and_resume_gives_the_same_bytes(
    tmp_path, monkeypatch, capsys, recipe, reference, step
) -> None:
    from tui_merge.engine import writer

    real_init = writer.ShardStream.__init__

    def opened(self, path: Path) -> None:
        real_init(self, path)
        if "-00002-of-" in path.name:
            self._file = _FailingFile(self._file, step)

    monkeypatch.setattr(writer.ShardStream, "__init__", opened)
    output = tmp_path / "out"

    status = main(["run", str(recipe), str(output)])

    err = capsys.readouterr().err
    assert status == 1, err
    message = err.splitlines()[-1]
    assert message.startswith(f"tui-merge: error: The disk of {tmp_path} is full (No space left on device): ")
    assert "free at least" in message and "1 of 6 shards are finished and kept" in message and "--resume" in message
    assert "Traceback" not in err and not output.exists()

    monkeypatch.setattr(writer.ShardStream, "__init__", real_init)  # the disk has room again
    assert main(["run", str(recipe), str(output), "--resume"]) == 0
    assert folder_digest(output) == reference


FILL_AT = """
import sys
from pathlib import Path
from tui_merge.cli import main
from tui_merge.engine import executor
from tui_merge.engine.events import ShardWritten

filler, real_execute = Path(sys.argv[1]), executor.execute

def execute(*args, on_event=None, **kwargs):
    def hooked(event):
        on_event(event)
        if isinstance(event, ShardWritten) and not filler.exists():
            with filler.open("wb") as handle:  # another process's download, taking every free byte
                try:
                    while True:
                        handle.write(b"x" * 4096)
                        handle.flush()
                except OSError:
                    pass
    return real_execute(*args, on_event=hooked, **kwargs)

executor.execute = execute
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs, where this machine lets a test mount one (root, no container rule against it)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_real_disk_filled_by_another_process_during_the_merge(tmp_path, recipe, reference, small_disk) -> None:
    output, filler = small_disk / "out", small_disk / "download.bin"
    script = tmp_path / "fill_at.py"
    script.write_text(FILL_AT)

    result = subprocess.run(
        [sys.executable, str(script), str(filler), "run", str(recipe), str(output)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    message = result.stderr.splitlines()[-1]
    assert message.startswith(f"tui-merge: error: The disk of {small_disk} is full (No space left on device)")
    assert "--resume" in message and "Traceback" not in result.stderr and not output.exists()
    filler.unlink()
    assert main(["run", str(recipe), str(output), "--resume"]) == 0
    assert folder_digest(output) == reference
