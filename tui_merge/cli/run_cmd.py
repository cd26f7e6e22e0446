"""``tui-merge run``: replay a config headlessly, with progress a person or a log file can read."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from tui_merge.engine.events import Log, MergeEvent, MergeFinished, MergeStarted, ShardWritten, TensorMerged
from tui_merge.engine.executor import execute
from tui_merge.engine.plan import Plan, plan_summary
from tui_merge.engine.preflight import check_output
from tui_merge.engine.prepare import prepare
from tui_merge.errors import BadInputError
from tui_merge.report_view import human_bytes

PLAIN_REPORT_EVERY = 10
"""Percent of progress between two lines in plain (non-terminal) output."""


def run(args: argparse.Namespace) -> int:
    """Validate, plan and (unless --dry-run) merge."""
    output = args.output_option or args.output
    if args.output_option and args.output and args.output_option != args.output:
        raise BadInputError(f"Two outputs given ({args.output} and -o {args.output_option}); give one.")
    plan = prepare(Path(args.config))
    if args.dry_run:
        print_plan(plan, Path(output) if output else None)
        return 0
    if not output:
        raise BadInputError("No output folder given; add it after the config or with -o OUT.")
    return merge_plan(
        plan, Path(output), force=args.force, resume=args.resume, allow_nonfinite=args.allow_nonfinite,
        verify=args.verify,
    )  # fmt: skip


def merge_plan(
    plan: Plan,
    output: Path,
    *,
    force: bool,
    resume: bool,
    allow_nonfinite: bool = False,
    verify: bool = False,
    plain_progress: bool = False,
) -> int:
    """Merge a planned config into ``output`` with progress on stderr: what ``run`` and the other front ends share.

    A progress bar on a terminal, timestamped lines otherwise or with ``plain_progress`` (screen readers,
    dumb terminals).
    """
    check_output(plan, output, force=force, resume=resume)
    bar = sys.stderr.isatty() and not plain_progress
    reporter = _TerminalProgress(plan) if bar else _PlainProgress()
    stop = threading.Event()
    with reporter, _stop_on_signals(stop):
        summary = execute(
            plan,
            output,
            on_event=reporter.handle,
            cancel=stop,
            replace=force,
            resume=resume,
            keep_partial=True,
            allow_nonfinite=allow_nonfinite,
        )
    print(
        f"Merged {summary.tensors} tensors ({human_bytes(summary.bytes_written)}) into {output} "
        f"in {summary.seconds:.1f} s; the recipe is saved there as tui_merge_config.yaml."
    )
    if verify:
        from tui_merge.cli.verify_cmd import print_verification

        return print_verification(output)
    return 0


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
"""Signals that stop a merge after the current tensor: Ctrl-C, kill, a closed SSH session."""


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """The first stop signal sets ``stop`` (the merge ends after the current tensor); a second one interrupts."""

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        with suppress(OSError):  # after SIGHUP the terminal may be gone
            print(
                f"\ntui-merge: {signal.Signals(signum).name}: stopping after the current tensor "
                "(Ctrl-C again stops at once).",
                file=sys.stderr,
                flush=True,
            )

    previous = {number: signal.signal(number, handle) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def print_plan(plan: Plan, output: Path | None) -> None:
    """The dry-run summary: what would be read and written, and whether it fits."""
    print("\n".join([*plan_summary(plan, output), "The config is valid; nothing was written (dry run)."]))


class _TerminalProgress:
    """A rich progress bar on stderr: tensors, bytes, throughput, time left."""

    def __init__(self, plan: Plan) -> None:
        self.progress = Progress(
            TextColumn("[bold]merging"),
            BarColumn(bar_width=None),
            TextColumn("{task.fields[tensors]}"),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            expand=True,
        )
        self.total_tensors = len(plan.tasks)
        self.task = self.progress.add_task("merge", total=plan.bytes_to_write, tensors=f"0/{self.total_tensors}")

    def __enter__(self) -> _TerminalProgress:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def handle(self, event: MergeEvent) -> None:
        if isinstance(event, TensorMerged):
            self.progress.update(self.task, completed=event.bytes_done, tensors=f"{event.index}/{event.total}")
        elif isinstance(event, Log):
            self.progress.console.print(event.text)


class _PlainProgress:
    """Timestamped lines, a few per merge, that read well in a nohup log."""

    def __init__(self) -> None:
        self.reported = -PLAIN_REPORT_EVERY
        self.started = time.monotonic()

    def __enter__(self) -> _PlainProgress:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def handle(self, event: MergeEvent) -> None:
        if isinstance(event, MergeStarted):
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

    def _line(self, text: str) -> None:
        print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {text}", file=sys.stderr, flush=True)
