"""A wizard whose terminal hangs up (a lost SSH session, a killed tmux) hands its merge to the headless path.

The merge is the work a person cares about, and the terminal is gone. On
SIGHUP the wizard stops its merge at the next checkpoint keeping the
finished shards, leaves the full-screen app, and continues the same job as
``tui-merge run --resume`` does, in the same process: its timestamped log
goes to ``OUT.tui-merge.log`` beside the output (whose first lines say why
it is there), further hangups are ignored, and the output's lock is held
until the merge ends. The result is what an uninterrupted merge gives, or a
resumable ``OUT.partial`` after an error; a later ``tui-merge wizard
--config`` on the config or ``tui-merge run --resume`` sees either.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tui_merge.wizard.state import WizardState


@dataclass
class Handover:
    """The wizard's merge at the moment its terminal hung up."""

    state: WizardState
    ended: threading.Event = field(default_factory=threading.Event)
    """Set once the wizard's own merge thread has ended (stopped, failed or finished)."""
    completed: threading.Event = field(default_factory=threading.Event)
    """Set when that merge finished before the stop reached it: nothing is left to do."""


def log_path(output: Path) -> Path:
    """Where a handed-over merge writes its log: ``OUT.tui-merge.log`` beside the output."""
    output = Path(os.path.abspath(output))
    return output.with_name(output.name + ".tui-merge.log")


def continue_headless(handover: Handover) -> int:
    """Finish the wizard's merge without a terminal; the exit status ``tui-merge run`` would give."""
    from tui_merge.engine.job import MergeJob
    from tui_merge.engine.lock import partial_path
    from tui_merge.errors import TuiMergeError
    from tui_merge.headless import run_in_console

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal is gone already: another hangup changes nothing
    state = handover.state
    output = Path(state.output)
    log = log_path(output)
    _point_console_at(log)
    command = f"tui-merge run {state.config_path} -o {output} --resume"
    _say(f"the wizard's terminal hung up; its merge into {output} goes on here without one (process {os.getpid()}).")
    _say(f"this log is {log}; if the merge stops, continue it with: {command}")
    handover.ended.wait()
    if handover.completed.is_set():
        _say(f"the merge had finished before the hangup: {output} is complete.")
        return 0
    job = MergeJob(
        state.loaded_config(), output, models=state.job_models(), replace=state.replace_output,
        resume=partial_path(output).is_dir(), keep_partial=True, verify=True, download=state.download,
    )  # fmt: skip
    try:
        return run_in_console(job, plain_progress=True)
    except TuiMergeError as error:
        _say(f"tui-merge: error: {error.message}")
        return error.exit_code


def _point_console_at(log: Path) -> None:
    """Standard input from nowhere, standard output and error appended to ``log``."""
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # what was meant for the dead terminal is dropped
            stream.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    nowhere = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nowhere, 0)
    os.close(nowhere)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115 - the process's
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115 - own streams


def _say(text: str) -> None:
    print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}", file=sys.stderr, flush=True)
