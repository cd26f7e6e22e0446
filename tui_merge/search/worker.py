"""A search's worker process: ``python -m tui_merge.search.worker`` reads one trial per line (JSON) on its stdin,
runs it (``search.trial.evaluate``) and answers one line (JSON) on its stdout, until its stdin closes.

A plain child process with pipes, not ``multiprocessing``: it starts the same way from a shell and from inside
the wizard (whose redirected streams have no file descriptors to pass on), whatever the worker prints goes to its
log file instead of the terminal or the wizard's screen, and it ends with the search that started it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from typing import Any

from tui_merge.search.objectives import Objective
from tui_merge.search.trial import TrialJob, TrialOutcome, evaluate


def job_to_line(job: TrialJob) -> str:
    return json.dumps(dataclasses.asdict(job)) + "\n"


def job_from_line(line: str) -> TrialJob:
    data: dict[str, Any] = json.loads(line)
    data["objectives"] = tuple(Objective(**objective) for objective in data["objectives"])
    return TrialJob(**data)


def outcome_to_line(outcome: TrialOutcome) -> str:
    return json.dumps(dataclasses.asdict(outcome)) + "\n"


def outcome_from_line(line: str) -> TrialOutcome:
    data: dict[str, Any] = json.loads(line)
    if data["values"] is not None:
        data["values"] = tuple(data["values"])
    return TrialOutcome(**data)


def _end_with_parent(parent: int) -> None:
    """Be stopped when the search that started this worker ends (Linux), even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the search ended before the line above
        raise SystemExit(0)


def main() -> int:
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    sys.stdout = sys.stderr  # anything a library prints goes to the log, never into the answers
    _end_with_parent(int(os.environ.get("TUI_MERGE_SEARCH_PARENT", os.getppid())))
    try:
        for line in sys.stdin:
            if line.strip():
                answers.write(outcome_to_line(evaluate(job_from_line(line))))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the search says what it means
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
