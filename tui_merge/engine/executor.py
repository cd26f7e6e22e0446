"""Run a plan: read each task's inputs, merge them (``engine.tensor_merge``), write the result, report every step.

Tasks run one after another in plan order, so only the tensors of the task in
hand are in memory: peak memory is a few tensors, not a model. A pause or a
stop (``engine.control``) takes effect between blocks of rows and between
tensors. Any failure, cancel or interrupt removes the partial folder (or
keeps it for a resume), so nothing is ever left at the output path.
"""

from __future__ import annotations

import errno
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch

from tui_merge.devices import resolve_device
from tui_merge.engine.control import MergeControl
from tui_merge.engine.disk import free_space
from tui_merge.engine.events import (
    EventCallback,
    Log,
    MergeFailed,
    MergeFinished,
    MergeStarted,
    MergeSummary,
    ShardWritten,
    TensorMerged,
)
from tui_merge.engine.journal import JOURNAL_NAME, Journal, plan_fingerprint
from tui_merge.engine.lock import OutputLock, partial_path
from tui_merge.engine.memory import allocator_for_merging
from tui_merge.engine.merge_errors import (
    MergeCancelled,
    MergeError,
    MergeInputChanged,
    MergeInterrupted,
    MergeWriteFailed,
)
from tui_merge.engine.plan import Plan
from tui_merge.engine.preflight import DISK_MARGIN, resume_command
from tui_merge.engine.tensor_merge import merge_pieces
from tui_merge.engine.threads import threads_for_merging
from tui_merge.engine.writer import OutputWriter
from tui_merge.errors import BadInputError, TuiMergeError
from tui_merge.models.reader import InputChanged, TensorReader

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors of a disk (or a quota) with no room left: said with how much more the merge needs."""


def execute(
    plan: Plan,
    output: Path,
    *,
    on_event: EventCallback | None = None,
    control: MergeControl | None = None,
    replace: bool = False,
    resume: bool = False,
    keep_partial: bool = False,
    allow_nonfinite: bool = False,
    lock: OutputLock | None = None,
) -> MergeSummary:
    """Merge and write ``plan`` to ``output``; return what was produced.

    ``control`` is checked between blocks of rows and between tensors (it can
    pause the merge or stop it). With ``keep_partial`` a stop, an
    interrupt, an I/O error or an input file that changed under the merge
    (exit 2) keeps ``OUT.partial`` and its journal for
    ``resume`` (the command line does this); without it (the wizard) every
    stop removes it. A merge that fails on its own terms (NaN, bad input)
    always removes it: resuming could only fail again.
    ``lock`` is the output's lock when the caller took it before its own
    checks (``run_job`` does); without one the merge takes it here.
    """
    with ExitStack() as held:
        if lock is None or not lock.held:
            held.enter_context(OutputLock(output))
        return _Run(plan, output, on_event, control, replace, keep_partial, allow_nonfinite).perform(resume)


class _Run:
    """One execution of a plan: the writer, the journal, the bytes written so far, and what a stop does."""

    def __init__(
        self, plan: Plan, output: Path, on_event: EventCallback | None, control: MergeControl | None,
        replace: bool, keep_partial: bool, allow_nonfinite: bool,
    ) -> None:  # fmt: skip
        self.plan, self.output, self.control = plan, output, control
        self.emit: EventCallback = on_event or (lambda event: None)
        self._keep_partial, self.allow_nonfinite = keep_partial, allow_nonfinite
        self.device = resolve_device(plan.config.tui_merge.device)
        self.kernel = plan.method.load_kernel()
        self.writer = OutputWriter(plan, output, replace=replace)
        self.journal: Journal | None = None
        """The resumed journal, or the new one once ``OUT.partial`` exists."""
        self.owns_partial = False
        """True once this run created ``OUT.partial`` or resumes it: a folder left by another run is never removed."""
        self.written = 0
        self.scales: dict[str, torch.Tensor] = {}
        """Block scales of the FP8 weight just written, until its ``..._scale_inv`` task writes them."""

    def perform(self, resume: bool) -> MergeSummary:
        """The whole merge, under the output's lock."""
        plan = self.plan
        self.emit(MergeStarted(plan))
        for note in (*plan.vocabulary.notes, *plan.notes):
            self.emit(Log("info", note))
        fingerprint = plan_fingerprint(plan)
        if resume:
            # Checked before anything is touched: a refused resume leaves the partial folder as it was.
            self.journal = Journal.load(self.writer.partial)
            self.journal.check(fingerprint, self.writer.partial)
        started = time.monotonic()
        with allocator_for_merging(), threads_for_merging():
            try:
                self.open(fingerprint)
                bytes_read = self.write_shards()
                self.checkpoint()  # a stop asked for during the last tensor still leaves nothing at the output
                self.writer.finish(self.journal)
            except BaseException as error:
                raise self.failure(error) from None
        summary = MergeSummary(self.output, len(plan.tasks), self.written, bytes_read, time.monotonic() - started)
        self.emit(MergeFinished(summary))
        return summary

    @property
    def keep_partial(self) -> bool:
        """Whether a stop keeps ``OUT.partial`` for a resume: the job's choice, or the control's at the stop."""
        return self._keep_partial or (self.control is not None and self.control.keeps_partial)

    def open(self, fingerprint: str) -> None:
        """Start ``OUT.partial`` with a fresh journal, or keep what the resumed journal verified."""
        if self.journal is not None:
            self.owns_partial = True
            self.writer.keep_only({*self.journal.finished, JOURNAL_NAME})
            finished = len(self.journal.finished)
            self.emit(Log("info", f"resuming: {finished} of {len(self.plan.shards)} shards verified and kept"))
            return
        self.writer.start()
        self.owns_partial = True
        self.journal = Journal.create(self.writer.partial, fingerprint)

    def write_shards(self) -> int:
        """Write every shard the journal does not already hold; the bytes read."""
        with TensorReader() as reader:
            for shard in self.plan.shards:
                if shard.file_name in self.journal.finished:
                    self._count_kept(shard)
                else:
                    self._write_shard(shard, reader)
            return reader.bytes_read

    def _count_kept(self, shard) -> None:
        for index in shard.tasks:
            self.written += self.plan.tasks[index].nbytes
            self.emit(TensorMerged(index + 1, len(self.plan.tasks), self.plan.tasks[index].name, 0, self.written))

    def _write_shard(self, shard, reader: TensorReader) -> None:
        plan = self.plan
        self.writer.open_shard(shard)
        for index in shard.tasks:
            self.checkpoint()
            task = plan.tasks[index]
            if index + 1 < len(plan.tasks):
                for ref in plan.tasks[index + 1].reads:
                    reader.prefetch(ref.entry)
            if task.quantize is not None or task.scales_of is not None:
                pieces = [self._quantized_piece(index, reader)]
            else:
                pieces = merge_pieces(
                    plan, task, self.kernel, reader, self.device, self.allow_nonfinite, self.checkpoint
                )
            for piece in pieces:
                self.writer.write_tensor(task, piece)
            self.written += task.nbytes
            self.emit(TensorMerged(index + 1, len(plan.tasks), task.name, task.nbytes, self.written))
        size, digest = self.writer.close_shard()
        self.journal.record(shard.file_name, size, digest)
        self.emit(ShardWritten(self.output / shard.file_name, size))

    def _quantized_piece(self, index: int, reader: TensorReader) -> torch.Tensor:
        """A weight of ``tui_merge.quantize: fp8``: its FP8 codes, keeping their scales for the ``..._scale_inv``
        task that follows it; for that task, the scales (quantized again when a resume kept the weight's shard:
        the same bytes)."""
        from tui_merge.models.quantization import quantize_fp8

        task = self.plan.tasks[index]
        if task.scales_of is not None and task.scales_of in self.scales:
            return self.scales.pop(task.scales_of)
        weight = self.plan.tasks[index - 1] if task.scales_of is not None else task
        values = torch.cat(list(merge_pieces(
            self.plan, replace(weight, dtype="F32", quantize=None), self.kernel, reader, self.device,
            self.allow_nonfinite, self.checkpoint,
        )))  # fmt: skip
        codes, scales = quantize_fp8(values, weight.quantize)
        if task.scales_of is not None:
            return scales
        self.scales[task.name] = scales
        return codes

    def checkpoint(self) -> None:
        """Wait while the control pauses the merge; raise the stop error when it stops it."""
        if self.control is not None and self.control.checkpoint():
            raise self._stopped("Stopped")

    def failure(self, error: BaseException) -> BaseException:
        """The error to raise for ``error``, once ``OUT.partial`` is kept for a resume or removed."""
        resumable = isinstance(error, (MergeInterrupted, KeyboardInterrupt, OSError, InputChanged))
        finished = self.journal is not None and not self.journal.path.exists() and self.writer.partial.is_dir()
        if isinstance(error, OSError) and finished:
            # Every file was written and the journal dropped: only moving the folder into place failed, so the
            # complete model stays where it is and the message says so (a resume could not find a journal).
            partial = self.writer.partial
            error = MergeError(
                f"{_io_error(error)} while moving the finished merge into place; the complete model is in "
                f"{partial}: move it yourself (mv {partial} {self.output})."
            )
        elif self.keep_partial and self.journal is not None and resumable:
            self.writer.close_open_shard()
            if isinstance(error, OSError) and error.errno in DISK_FULL:
                error = self._stopped(self._disk_full(error), MergeWriteFailed)
            elif isinstance(error, OSError):
                error = self._stopped(_io_error(error), MergeWriteFailed)
            elif isinstance(error, InputChanged):
                error = self._stopped(f"{error.message} (restore it before resuming)", MergeInputChanged)
            elif not isinstance(error, MergeInterrupted):
                error = self._stopped("Interrupted")
        else:
            if self.owns_partial:
                self.writer.abandon()
            if isinstance(error, OSError):
                error = MergeError(f"{_io_error(error)}; nothing was written at {self.output}.")
            elif isinstance(error, InputChanged):
                error = BadInputError(f"{error.message}; nothing was written at {self.output}.")
        self.emit(MergeFailed(getattr(error, "message", None) or f"{type(error).__name__}: {error}"))
        return error

    def _disk_full(self, error: OSError) -> str:
        """The full disk named, with what the merge still needs beyond what it has now."""
        from tui_merge.units import human_bytes

        folder, free = free_space(self.output)
        finished = self.journal.finished if self.journal is not None else {}
        kept = sum(shard.size for shard in self.plan.shards if shard.file_name in finished)
        wanted = int((self.plan.bytes_to_write - kept) * DISK_MARGIN)
        # A resume deletes the unfinished shard first: its bytes count as free.
        unfinished = [path for path in self.writer.partial.glob("*.safetensors") if path.name not in finished]
        free += sum(path.stat().st_size for path in unfinished)
        short = human_bytes(max(wanted - free, 0))
        return (
            f"The disk of {folder} is full ({error.strerror or error}): the merge still writes {human_bytes(wanted)} "
            f"and {human_bytes(free)} is free for it, so free at least {short} more"
        )

    def _stopped(self, reason: str, kind: type[MergeInterrupted] = MergeInterrupted) -> TuiMergeError:
        """A cancel or a stop: with ``keep_partial`` the way to resume, else the word that nothing was written."""
        if not self.keep_partial:
            return MergeCancelled(f"Merge cancelled; nothing was written at {self.output}.")
        finished = len(self.journal.finished) if self.journal is not None else 0
        partial = partial_path(self.output)
        resume = resume_command(self.plan.loaded, self.output)
        if not finished:
            return kind(f"{reason}; nothing is at {self.output} yet and no shard was finished, so {resume} starts "
                        f"over in {partial} (a smaller tui_merge.shard_size keeps more of a long merge)")  # fmt: skip
        return kind(f"{reason}; nothing is at {self.output} yet, {finished} of {len(self.plan.shards)} shards are "
                    f"finished and kept in {partial}: continue with {resume}")  # fmt: skip


def _io_error(error: OSError) -> str:
    """``I/O error (No space left on device: /data/out.partial/model-00003-of-00005.safetensors)``."""
    where = f": {error.filename}" if error.filename else ""
    return f"I/O error ({error.strerror or error}{where})"
