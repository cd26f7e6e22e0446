"""A merge job in a console: progress on stderr, stop signals, the closing lines and the verification.

``tui-merge run``, the one-off commands and the plain wizard run their merge
through ``run_in_console``: a rich progress bar on a terminal, timestamped
lines otherwise (a ``nohup`` log, a screen reader, a dumb terminal). The
first Ctrl-C, SIGTERM or SIGHUP stops after the current tensor and keeps the
finished shards for ``--resume``; a second one stops at once. A signal that
was ignored when the process started stays ignored: ``nohup tui-merge run …
&`` and ``setsid`` runs merge to the end whatever happens to the terminal.
Progress written to a terminal that has gone (a closed SSH session, a reader
that quit) is dropped: the console is where the merge is shown, never a
reason for it to fail.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import (
    CheckDone,
    DownloadProgress,
    FileDownloaded,
    Log,
    MergeEvent,
    MergeFinished,
    MergeStarted,
    ShardWritten,
    TensorMerged,
    VerificationStarted,
    Verified,
)
from tui_merge.engine.job import MergeJob, run_job
from tui_merge.engine.verification import Check, VerifyReport, check_line
from tui_merge.units import human_bytes

PLAIN_REPORT_EVERY = 10
"""Percent of progress between two lines in plain (non-terminal) output."""

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop a merge after the current tensor: Ctrl-C, kill, a closed SSH session."""


def run_in_console(job: MergeJob, *, plain_progress: bool = False, quiet: bool = False) -> int:
    """Run ``job`` with progress on stderr; the exit status (1 when verification fails).

    A progress bar on a terminal, timestamped lines otherwise or with ``plain_progress``; with ``quiet`` no
    progress at all, only warnings and the result.
    """
    bar = sys.stderr.isatty() and not plain_progress
    reporter = _QuietProgress() if quiet else _TerminalProgress() if bar else _PlainProgress()
    control = MergeControl()
    with _stop_on_signals(control):
        with suppress(OSError, ValueError):
            reporter.__enter__()
        try:
            result = run_job(job, on_event=_while_console_lives(reporter.handle), control=control)
        finally:
            with suppress(OSError, ValueError):  # stopping a progress bar on a terminal that has gone
                reporter.__exit__(None, None, None)
    return 0 if result.report is None or result.report.ok else 1


def _while_console_lives(handle: Callable[[MergeEvent], None]) -> Callable[[MergeEvent], None]:
    """``handle`` until writing to the console fails (its terminal hung up, its reader quit); then nothing."""
    gone = False

    def guarded(event: MergeEvent) -> None:
        nonlocal gone
        if gone:
            return
        try:
            handle(event)
        except (OSError, ValueError):  # EIO from a hung-up terminal, EPIPE, a closed file
            gone = True

    return guarded


def print_check(check: Check) -> None:
    """One verification check as a line of its own."""
    print(f"  {check_line(check)}", flush=True)


def verdict(report: VerifyReport) -> str:
    """One sentence on the whole report."""
    failed = [check.name for check in report.checks if check.outcome == "failed"]
    if not failed:
        return f"{report.folder} passed verification."
    return f"{report.folder} failed verification: {', '.join(failed)} (see above)."


def _closing_lines(event: MergeEvent) -> None:
    """What both reporters print on stdout: the merge's result and the verification."""
    if isinstance(event, MergeFinished):
        summary = event.summary
        print(
            f"Merged {summary.tensors} tensors ({human_bytes(summary.bytes_written)}) into {summary.output} "
            f"in {summary.seconds:.1f} s; the recipe is saved there as tui_merge_config.yaml.",
            flush=True,
        )
    elif isinstance(event, VerificationStarted):
        print(f"Verifying {event.folder}", flush=True)
    elif isinstance(event, CheckDone):
        print_check(event.check)
    elif isinstance(event, Verified):
        print(verdict(event.report), flush=True)


@contextmanager
def _stop_on_signals(control: MergeControl) -> Iterator[None]:
    """The first stop signal stops the merge at its next checkpoint; a second one interrupts at once."""

    def handle(signum: int, frame: object) -> None:
        if control.stopped:
            raise KeyboardInterrupt
        control.stop()
        with suppress(OSError):  # after SIGHUP the terminal may be gone
            print(
                f"\ntui-merge: {signal.Signals(signum).name}: stopping after the current tensor "
                "(Ctrl-C again stops at once).",
                file=sys.stderr,
                flush=True,
            )

    # Ignored at start (nohup, a background job without job control): the caller wants the merge to outlive it.
    heeded = [number for number in STOP_SIGNALS if signal.getsignal(number) is not signal.SIG_IGN]
    previous = {number: signal.signal(number, handle) for number in heeded}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _TerminalProgress:
    """A rich progress bar on stderr: tensors, bytes, throughput, time left."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[tensors]}"),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            expand=True,
        )
        self.task = None
        self.download_task = None
        self.file_task = None

    def __enter__(self) -> _TerminalProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def handle(self, event: MergeEvent) -> None:
        if isinstance(event, DownloadProgress):
            self._download(event)
        elif isinstance(event, FileDownloaded) and self.file_task is not None:
            self.progress.console.print(f"downloaded {event.repo_id}/{event.file} ({human_bytes(event.size)})")
        elif isinstance(event, MergeStarted):
            for task in (self.download_task, self.file_task):
                if task is not None:
                    self.progress.remove_task(task)
            plan = event.plan
            self.task = self.progress.add_task("merging", total=plan.bytes_to_write, tensors=f"0/{len(plan.tasks)}")
        elif isinstance(event, TensorMerged) and self.task is not None:
            self.progress.update(self.task, completed=event.bytes_done, tensors=f"{event.index}/{event.total}")
        elif isinstance(event, Log):
            self.progress.console.print(event.text)
        elif isinstance(event, MergeFinished):
            self.progress.stop()
        _closing_lines(event)

    def _download(self, event: DownloadProgress) -> None:
        """Two bars: every file the merge needs, and the one arriving now."""
        files = f"{event.index}/{event.count} files"
        if self.download_task is None:
            self.download_task = self.progress.add_task("downloading", total=event.bytes_total, tensors=files)
            self.file_task = self.progress.add_task("", total=event.size, tensors="")
        self.progress.update(self.download_task, completed=event.bytes_done, tensors=files)
        self.progress.update(self.file_task, completed=event.received, total=event.size, description=f"  {event.file}")


class _QuietProgress:
    """No progress: the warnings and the closing lines only."""

    def __enter__(self) -> _QuietProgress:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def handle(self, event: MergeEvent) -> None:
        if isinstance(event, Log) and event.level == "warning":
            print(event.text, file=sys.stderr, flush=True)
        _closing_lines(event)


class _PlainProgress:
    """Timestamped lines, a few per merge, that read well in a nohup log."""

    def __init__(self) -> None:
        self.reported = -PLAIN_REPORT_EVERY
        self.started = time.monotonic()
        self.download_reported = -PLAIN_REPORT_EVERY
        self.download_started: tuple[float, int] | None = None
        """When the first download figure came, and its bytes: the rate counts from there."""

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def handle(self, event: MergeEvent) -> None:
        if isinstance(event, DownloadProgress):
            self._download(event)
        elif isinstance(event, FileDownloaded):
            self._line(f"downloaded {event.repo_id}/{event.file} ({human_bytes(event.size)}), sha256 checked")
        elif isinstance(event, MergeStarted):
            self.started = time.monotonic()
            plan = event.plan
            self._line(
                f"merging {len(plan.tasks)} tensors ({human_bytes(plan.bytes_to_write)}) with "
                f"{plan.config.merge_method}"
            )
        elif isinstance(event, TensorMerged):
            percent = 100 * event.index // event.total
            if percent >= self.reported + PLAIN_REPORT_EVERY or event.index == event.total:
                self.reported = percent
                rate = event.bytes_done / max(time.monotonic() - self.started, 1e-9)
                self._line(f"{percent:3d}% {event.index}/{event.total} tensors, {human_bytes(int(rate))}/s")
        elif isinstance(event, ShardWritten):
            self._line(f"wrote {event.path.name} ({human_bytes(event.size)})")
        elif isinstance(event, Log):
            self._line(event.text)
        elif isinstance(event, MergeFinished):
            self._line("done")
        _closing_lines(event)

    def _download(self, event: DownloadProgress) -> None:
        """A line each tenth of the whole download: bytes, rate and time left."""
        now = time.monotonic()
        if self.download_started is None:
            self.download_started = (now, event.bytes_done)
        percent = 100 * event.bytes_done // max(event.bytes_total, 1)
        if percent < self.download_reported + PLAIN_REPORT_EVERY:
            return
        self.download_reported = percent
        started, before = self.download_started
        rate = (event.bytes_done - before) / (now - started) if now - started > 0.5 else 0
        pace = (
            f", {human_bytes(int(rate))}/s, {(event.bytes_total - event.bytes_done) / rate:.0f} s left" if rate else ""
        )
        self._line(
            f"download {percent:3d}% {human_bytes(event.bytes_done)} of {human_bytes(event.bytes_total)}{pace} "
            f"(file {event.index}/{event.count}: {event.file})"
        )

    def _line(self, text: str) -> None:
        print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}", file=sys.stderr, flush=True)
