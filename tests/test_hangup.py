"""A lost SSH session never loses a merge: real pseudo-terminals closed under running merges, and nohup.

Each merge runs in a child process whose merge is held after its first
tensor (``pause_at.py``) until the test has done its deed: closed the
child's terminal (the kernel then sends SIGHUP, as when an SSH session
drops) or sent it a hangup.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from conftest import folder_digest

from tui_merge.cli import main
from tui_merge.engine.lock import lock_path
from tui_merge.tui.hangup import log_path

pytestmark = pytest.mark.slow
"""Real subprocesses on real terminals: run them with ``-m slow``, leave them out with ``-m "not slow"``."""

HERE = Path(__file__).parent
CONFIG = "merge_method: slerp\nbase_model: {a}\nmodels:\n  - model: {a}\n  - model: {b}\nparameters: {{t: 0.4}}\n"
CONFIG += "tui_merge: {{shard_size: 30KB}}\n"
WAIT = 120.0


@pytest.fixture()
def recipe(tmp_path: Path, llama_base: Path, llama_finetune: Path) -> Path:
    path = tmp_path / "merge.yaml"
    path.write_text(CONFIG.format(a=llama_base, b=llama_finetune))
    return path


def under_a_terminal(argv: list[str]) -> tuple[int, int]:
    """Start ``argv`` as the session leader of a new 80x24 pseudo-terminal; its pid and the terminal's master."""
    pid, master = pty.fork()
    if pid == 0:  # the child: never return into pytest
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            environment = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": str(HERE)}
            os.execve(argv[0], argv, environment)
        finally:
            os._exit(127)
    return pid, master


def read_until(master: int, marker: Path) -> bytes:
    """What the terminal shows until ``marker`` exists (reading keeps the child from blocking on a full pty)."""
    shown = b""
    deadline = time.monotonic() + WAIT
    while not marker.exists():
        assert time.monotonic() < deadline, f"{marker.name} never appeared; the screen said: {shown[-2000:]!r}"
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                shown += os.read(master, 65536)
            except OSError:
                break
    return shown


def exit_status(pid: int) -> int:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the merge never ended after its terminal hung up")


def hang_up(master: int, held: Path) -> None:
    """Close the terminal under the child (the kernel sends it SIGHUP), then let its merge go on."""
    os.close(master)
    (held / "go").write_text("")


def test_a_foreground_run_whose_terminal_hangs_up_stops_cleanly_and_resumes(tmp_path, recipe) -> None:
    assert main(["run", str(recipe), str(tmp_path / "reference")]) == 0
    held, output = tmp_path / "held", tmp_path / "out"
    held.mkdir()
    pid, master = under_a_terminal([sys.executable, str(HERE / "pause_at.py"), str(held), "run", str(recipe),
                                    str(output)])  # fmt: skip
    read_until(master, held / "merging")

    hang_up(master, held)

    assert exit_status(pid) == 130  # stopped, not failed: writing to the dead terminal is no error
    assert not output.exists() and (tmp_path / "out.partial").is_dir() and not lock_path(output).exists()
    assert main(["run", str(recipe), str(output), "--resume"]) == 0
    assert folder_digest(output) == folder_digest(tmp_path / "reference")


@pytest.mark.skipif(shutil.which("nohup") is None, reason="needs nohup")
def test_nohup_runs_merge_to_the_end_through_a_hangup(tmp_path, recipe) -> None:
    assert main(["run", str(recipe), str(tmp_path / "reference")]) == 0
    held, output = tmp_path / "held", tmp_path / "out"
    held.mkdir()
    with (tmp_path / "nohup.log").open("wb") as log:
        process = subprocess.Popen(
            ["nohup", sys.executable, str(HERE / "pause_at.py"), str(held), "run", str(recipe), str(output)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(HERE)},
        )  # fmt: skip
        deadline = time.monotonic() + WAIT
        while not (held / "merging").exists():
            assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "nohup.log").read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGHUP)
        (held / "go").write_text("")
        assert process.wait(timeout=WAIT) == 0, (tmp_path / "nohup.log").read_text()
    assert "stopping" not in (tmp_path / "nohup.log").read_text()
    assert folder_digest(output) == folder_digest(tmp_path / "reference")


def test_the_wizard_hands_its_merge_to_the_headless_path_when_its_terminal_hangs_up(tmp_path, recipe) -> None:
    held, output = tmp_path / "held", tmp_path / "out"
    held.mkdir()
    pid, master = under_a_terminal([sys.executable, str(HERE / "wizard_run_at.py"), str(held), str(recipe),
                                    str(output)])  # fmt: skip
    read_until(master, held / "merging")

    hang_up(master, held)

    try:
        status = exit_status(pid)
    except AssertionError as error:
        stacks = (held / "stacks.txt").read_text() if (held / "stacks.txt").exists() else "no stacks"
        raise AssertionError(f"{error}; its threads after a minute:\n{stacks}") from None
    assert status == 0, log_path(output).read_text() if log_path(output).exists() else "no log"
    log = log_path(output).read_text()
    assert "the wizard's terminal hung up; its merge into" in log and "goes on here without one" in log
    assert f"{output} passed verification." in log
    assert not (tmp_path / "out.partial").exists() and not lock_path(output).exists()
    # The same bytes as a replay of the recipe the wizard saved with the merge.
    assert main(["run", str(output / "tui_merge_config.yaml"), str(tmp_path / "replay")]) == 0
    assert folder_digest(output) == folder_digest(tmp_path / "replay")


async def test_after_a_hangup_a_second_one_cannot_kill_the_process_before_the_headless_path_takes_over(
    workdir,
) -> None:
    """The app leaves on the first SIGHUP; leaving used to restore the signal's default, so a second hangup in
    the moment before the headless path ignored them killed the merge (seen as exit -1)."""
    from test_wizard_tui import SIZE, state_with

    from tui_merge.tui.app import WizardApp

    previous = signal.getsignal(signal.SIGHUP)
    try:
        app = WizardApp(state_with("base", "chat"))
        async with app.run_test(size=SIZE) as pilot:
            app.hung_up()
            await pilot.pause()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_the_wizard_draws_its_screen_again_on_sigcont_only_after_it_was_suspended(tmp_path, recipe) -> None:
    # The kernel sends SIGCONT with every hangup; taken as "back from ctrl+z" it restarted the screen on the dead
    # terminal with a second output thread, whose queue filled and then held the wizard's exit forever.
    held, output = tmp_path / "held", tmp_path / "out"
    held.mkdir()
    pid, master = under_a_terminal([sys.executable, str(HERE / "wizard_run_at.py"), str(held), str(recipe),
                                    str(output)])  # fmt: skip
    shown = read_until(master, held / "merging")

    os.kill(pid, signal.SIGCONT)  # nobody asked for it
    wait_until_delivered(pid, signal.SIGCONT)  # a stop signal sent while it waits would discard it
    os.kill(pid, signal.SIGTSTP)  # as a shell's job control does
    _, status = os.waitpid(pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    os.kill(pid, signal.SIGCONT)  # fg
    shown += read_until_shown(master, b"\x1b[?1049h")  # its full screen again
    wait_for_raw_mode(master)  # before it, ctrl+q would be the terminal's own (resume output) and never arrive
    os.write(master, b"\x11")  # ctrl+q: the merge runs, so the wizard pauses it and asks once
    shown += read_until_shown(master, b"Cancel the merge and quit?")
    (held / "go").write_text("")  # on to its next checkpoint, where it waits for the answer
    os.write(master, b"\x11")  # and the second one stops it and leaves
    shown += read_to_the_end(master)

    assert exit_status(pid) == 130, f"the screen ended with: {shown[-3000:]!r}"  # the merge was stopped
    assert shown.count(b"\x1b[?1049h") == 2, "the first SIGCONT drew the screen again, or fg did not"
    assert shown.count(b"\x1b[?1049l") == 2


def wait_until_delivered(pid: int, number: int) -> None:
    """Wait until the kernel has handed signal ``number`` to the process (Linux: its pending set in /proc)."""
    deadline = time.monotonic() + WAIT
    while True:
        status = Path(f"/proc/{pid}/status").read_text()
        pending = int(next(line for line in status.splitlines() if line.startswith("ShdPnd:")).split()[1], 16)
        if not pending & (1 << (number - 1)):
            return
        assert time.monotonic() < deadline, f"signal {number} was never delivered"
        time.sleep(0.01)


def wait_for_raw_mode(master: int) -> None:
    """Wait until the terminal hands every key to the program as it is (no line editing, no flow control)."""
    deadline = time.monotonic() + WAIT
    while True:
        input_flags, _, _, local_flags, *_ = termios.tcgetattr(master)
        if not local_flags & termios.ICANON and not input_flags & termios.IXON:
            return
        assert time.monotonic() < deadline, "the terminal never left line mode"
        time.sleep(0.01)


def read_until_shown(master: int, text: bytes) -> bytes:
    """What the terminal shows until it shows ``text``."""
    shown = b""
    deadline = time.monotonic() + WAIT
    while text not in shown:
        assert time.monotonic() < deadline, f"{text!r} never appeared; the screen said: {shown[-2000:]!r}"
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            shown += os.read(master, 65536)
    return shown


def read_to_the_end(master: int) -> bytes:
    """All the terminal shows until its program has closed it."""
    shown = b""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the program's side is closed
                break
            if not chunk:
                break
            shown += chunk
    os.close(master)
    return shown


@pytest.fixture()
def stock_signal_handlers():
    """The driver puts its own SIGTSTP and SIGCONT handlers in place; the test process gets its own back."""
    kept = {number: signal.getsignal(number) for number in (signal.SIGTSTP, signal.SIGCONT)}
    yield
    for number, handler in kept.items():
        signal.signal(number, handler)


async def test_a_stop_or_continue_signal_is_handled_after_the_code_it_interrupted(
    monkeypatch, stock_signal_handlers
) -> None:
    """A signal's handler runs in the main thread between two steps of whatever it was doing: the stock driver
    suspended or resumed the screen right there, writing to its output queue, and when the signal came while
    the main thread was inside that queue's lock, it waited on itself forever (seen: a test's wizard stuck at
    full speed on a closed terminal for an hour)."""
    from textual.drivers.linux_driver import LinuxDriver

    from tui_merge.tui.terminal_driver import HangupSafeDriver

    handled = []
    monkeypatch.setattr(LinuxDriver, "_sigtstp_application", lambda self, *_: handled.append("stop"))
    monkeypatch.setattr(LinuxDriver, "_sigcont_application", lambda self, *_: handled.append("continue"))
    driver = HangupSafeDriver(object(), mouse=False, size=(80, 24))

    signal.getsignal(signal.SIGTSTP)(signal.SIGTSTP, None)
    signal.getsignal(signal.SIGCONT)(signal.SIGCONT, None)
    assert handled == []  # not inside the interrupted code
    await asyncio.sleep(0)
    assert handled == ["stop", "continue"]  # next on the app's loop, in the order they came
    assert driver.suspended is False


def test_a_stop_signal_after_the_app_left_stops_the_process_as_the_default_does(
    monkeypatch, stock_signal_handlers
) -> None:
    from tui_merge.tui.terminal_driver import HangupSafeDriver

    async def made() -> HangupSafeDriver:
        return HangupSafeDriver(object(), mouse=False, size=(80, 24))

    driver = asyncio.run(made())  # its loop is closed now
    sent = []
    monkeypatch.setattr(os, "kill", lambda pid, number: sent.append((pid, number)))

    driver._sigtstp_application(signal.SIGTSTP, None)
    driver._sigcont_application(signal.SIGCONT, None)

    assert sent == [(os.getpid(), signal.SIGSTOP)]
