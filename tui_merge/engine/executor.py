"""Run a plan: read each task's inputs, merge them, write the result, report every step.

Tasks run one after another in plan order, so only the tensors of the task in
hand are in memory: peak memory is a few tensors, not a model. A pause or a
stop (``engine.control``) takes effect between blocks of rows and between
tensors. Any failure, cancel or interrupt removes the partial folder (or
keeps it for a resume), so nothing is ever left at the output path.
"""

from __future__ import annotations

import errno
import functools
import math
import time
from collections.abc import Callable, Iterator
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
from tui_merge.engine.finiteness import all_finite, shared_infinities
from tui_merge.engine.journal import JOURNAL_NAME, Journal, plan_fingerprint
from tui_merge.engine.lock import OutputLock, partial_path
from tui_merge.engine.memory import allocator_for_merging
from tui_merge.engine.plan import InputTensor, Plan, TensorTask
from tui_merge.engine.preflight import DISK_MARGIN, resume_command
from tui_merge.engine.threads import threads_for_merging
from tui_merge.engine.writer import OutputWriter
from tui_merge.errors import BadInputError, TuiMergeError
from tui_merge.methods import draws
from tui_merge.methods.inputs import MergeInputs
from tui_merge.models.reader import BLOCK_BYTES as READ_BLOCK_BYTES
from tui_merge.models.reader import TORCH_DTYPES, InputChanged, TensorReader, part_entry, row_blocks
from tui_merge.vocab.alignment import align_rows

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""The errors of a disk (or a quota) with no room left: said with how much more the merge needs."""


class MergeError(TuiMergeError):
    """The merge could not finish; nothing was written at the output path."""

    exit_code = 1


class MergeCancelled(TuiMergeError):
    """The user cancelled; nothing was written at the output path."""

    exit_code = 130


class MergeInterrupted(TuiMergeError):
    """Stopped by a signal or a cancel; ``OUT.partial`` and its journal are kept for ``--resume``."""

    exit_code = 130


class MergeWriteFailed(MergeInterrupted):
    """An I/O error stopped the merge (a full disk, a lost mount); ``OUT.partial`` is kept for ``--resume``."""

    exit_code = 1


class MergeInputChanged(MergeInterrupted):
    """An input file changed under the merge; ``OUT.partial`` is kept for ``--resume`` once it is restored."""

    exit_code = 2


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


def merge_pieces(
    plan: Plan,
    task: TensorTask,
    kernel,
    reader: TensorReader,
    device: str,
    allow_nonfinite: bool = False,
    checkpoint: Callable[[], None] = lambda: None,
) -> Iterator[torch.Tensor]:
    """The output tensor in the output dtype: whole, or a block of rows at a time.

    A large tensor of an elementwise method (linear, task_arithmetic,
    nearswap, passthrough, ram) is merged ``BLOCK_BYTES`` of float32 rows at
    a time, read straight from its byte range, so memory does not grow with
    the tensor; the bytes written are the same either way. Every other
    method has a block merger (``methods.blocks``): it first reads the
    blocks to gather what it needs of the whole tensor (thresholds, counts,
    Gram matrices, L1 norms), then merges them; its result equals the
    whole-tensor merge up to the order of float64 sums. When the tensor's
    inputs fit in ``KEPT_BLOCK_BYTES`` the blocks read by the first pass are
    kept for the others. Which path a tensor takes depends only on the plan,
    so a replay is byte-identical.
    ``checkpoint`` runs before every block (a pause or stop of the merge).
    """
    if task.expert_matrices:
        for matrix in range(task.shape[0] * task.expert_matrices):
            checkpoint()
            yield from merge_pieces(plan, _one_matrix(task, matrix), kernel, reader, device, allow_nonfinite,
                                    checkpoint)  # fmt: skip
        return
    blocks = _row_blocks(plan, task)
    if blocks is None:
        yield merge_task(plan, task, kernel, reader, device, allow_nonfinite)
        return

    generators = _model_generators(plan, task)  # shared by the blocks: each model draws in row order
    merger_class = plan.method.load_blocks()
    count = math.prod(task.shape)
    merger = None
    if merger_class is not None:
        merger = merger_class(dict(task.options), [dict(params) for params in task.model_params], count)
    inputs_count = len(task.inputs) + (1 if task.base else 0)
    kept: dict[int, tuple[list[torch.Tensor], torch.Tensor | None]] | None = None
    if merger is not None and merger.passes and inputs_count * count * 4 <= KEPT_BLOCK_BYTES:
        kept = {}

    def block_inputs(start: int, stop: int, check: bool) -> MergeInputs:
        def rows(ref: InputTensor) -> torch.Tensor:
            tensor = reader.read_rows(ref.entry, start, stop).to(device=device, dtype=torch.float32)
            return _checked(tensor, ref, allow_nonfinite) if check else tensor

        if kept is not None and start in kept:
            tensors, base = kept[start]
        else:
            tensors, base = [rows(ref) for ref in task.inputs], rows(task.base) if task.base else None
            if kept is not None:
                kept[start] = tensors, base
        return _inputs(plan, task, tensors, base, generators)

    if merger is None:
        for start, stop in blocks:
            checkpoint()
            yield _run_kernel(plan, task, kernel, block_inputs(start, stop, check=True))
        return
    for round_index in range(merger.passes):
        for start, stop in blocks:
            checkpoint()
            with torch.no_grad():
                merger.observe(block_inputs(start, stop, check=round_index == 0), round_index)
    for start, stop in blocks:
        checkpoint()
        inputs = block_inputs(start, stop, check=merger.passes == 0)
        if kept is not None:
            del kept[start]  # the merge is the block's last use: memory shrinks as the output grows
        yield _run_kernel(plan, task, merger.merge, inputs)


def _one_matrix(task: TensorTask, matrix: int) -> TensorTask:
    """Matrix ``matrix`` of a fused experts tensor as a task of its own (expert ``matrix // k``'s ``k``-th
    matrix, e.g. its gate or its up projection): every input's bytes of it, and a seed of its own for the
    random methods."""
    count = task.shape[0] * task.expert_matrices
    shape = (1, task.shape[1] // task.expert_matrices, *task.shape[2:])

    def sliced(ref: InputTensor | None) -> InputTensor | None:
        return None if ref is None else replace(ref, entry=part_entry(ref.entry, matrix, count, shape))

    return replace(
        task, shape=shape, inputs=tuple(sliced(ref) for ref in task.inputs), base=sliced(task.base),
        fill_from=tuple(sliced(ref) for ref in task.fill_from), expert_matrices=0,
        seed=(task.seed * 1_000_003 + matrix) & 0x7FFF_FFFF_FFFF_FFFF,
    )  # fmt: skip


BLOCK_BYTES = READ_BLOCK_BYTES
"""Float32 bytes per input in one block of rows (elementwise methods on large tensors)."""

KEPT_BLOCK_BYTES = 256 << 20
"""A block merger keeps the float32 blocks its first pass read, for its later passes and the merge, when all its
inputs' blocks together fit in this many bytes: each block is read and converted once instead of once per pass
(every layer tensor of the 1b preset with three inputs fits, and a 7B model's attention projections with two;
embeddings and 7B MLP matrices are read again). The values are the same either way, so the output is too."""


def _row_blocks(plan: Plan, task: TensorTask) -> list[tuple[int, int]] | None:
    refs = [*task.inputs, *([task.base] if task.base else [])]
    whole = (
        not (plan.method.elementwise or plan.method.blocks)
        or not task.merge
        or task.vocab is not None
        or len(task.shape) < 2
        or any(ref.rows is not None or ref.entry.shape != task.shape for ref in refs)
    )
    if whole or math.prod(task.shape) * 4 <= BLOCK_BYTES:
        return None
    # Random methods take four draws per generator word, never sharing one between blocks (methods.draws).
    return row_blocks(task.shape, BLOCK_BYTES, draws.VALUES_PER_WORD if plan.method.random else 1)


def merge_task(
    plan: Plan, task: TensorTask, kernel, reader: TensorReader, device: str, allow_nonfinite: bool = False
) -> torch.Tensor:
    """Compute one output tensor in float32 on ``device`` and cast it to the output dtype."""
    if not task.merge:
        return reader.read(task.inputs[0].entry)
    # Without a vocabulary to align, every input is read first: infinities they all share are set aside below.
    lenient = allow_nonfinite or task.vocab is None
    tensors = [_prepare(reader, ref, device, lenient) for ref in task.inputs]
    base = _prepare(reader, task.base, device, lenient) if task.base else None
    limits = None
    if task.vocab is None and not allow_nonfinite:
        tensors, base, limits = _set_limits_aside(task, tensors, base)
    if task.vocab is not None:
        extra = [ref for ref in (task.base, *task.fill_from) if ref is not None]
        matrices = [*zip([ref.model for ref in task.inputs], tensors)]
        matrices += [
            (ref.model, base if ref is task.base else _prepare(reader, ref, device, allow_nonfinite)) for ref in extra
        ]
        aligned = align_rows(matrices, task.vocab, _stored_precision(task.reads))
        tensors, base = aligned[: len(tensors)], (aligned[len(tensors)] if base is not None else None)
    result = _run_kernel(plan, task, kernel, _inputs(plan, task, tensors, base))
    if limits is not None:
        places, values = limits
        result[places.to(result.device)] = values.to(device=result.device, dtype=result.dtype)
    return result


def _set_limits_aside(
    task: TensorTask, tensors: list[torch.Tensor], base: torch.Tensor | None
) -> tuple[list[torch.Tensor], torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
    """The inputs ready to merge, and the places and values of the infinities they all share (None when none).

    An infinity every input holds at the same place with the same sign is a limit the architecture keeps
    (gemma4_audio's clipping bounds, ``input_max = inf``), not damage: those places are merged as zeros and get
    the infinity back. Any other NaN or infinity stops the merge with a sentence naming the tensor.
    """
    refs = [*task.inputs, *([task.base] if task.base is not None else [])]
    everyone = [*tensors, *([base] if base is not None else [])]
    if all(all_finite(tensor) for tensor in everyone):
        return tensors, base, None
    places = shared_infinities(everyone)
    if places is None:
        for ref, tensor in zip(refs, everyone):
            _checked(tensor, ref, allow_nonfinite=False)
    values = everyone[0][places]
    zeroed = [tensor.masked_fill(places, 0.0) for tensor in tensors]
    return zeroed, base.masked_fill(places, 0.0) if base is not None else None, (places, values)


def _stored_precision(refs: tuple[InputTensor, ...]) -> torch.dtype:
    """The dtype the inputs share when promoted (block-scaled FP8 counts as float32: its values are)."""
    dtypes = [torch.float32 if ref.entry.scale is not None else TORCH_DTYPES[ref.entry.dtype] for ref in refs]
    return functools.reduce(torch.promote_types, dtypes)


def _inputs(
    plan: Plan,
    task: TensorTask,
    tensors: list[torch.Tensor],
    base: torch.Tensor | None,
    generators: list[torch.Generator] | None = None,
) -> MergeInputs:
    return MergeInputs(
        tensors=tensors,
        params=[dict(params) for params in task.model_params],
        base=base,
        options=dict(task.options),
        generator=torch.Generator().manual_seed(task.seed) if plan.method.random else None,
        generators=_model_generators(plan, task) if generators is None else generators,
    )


def _model_generators(plan: Plan, task: TensorTask) -> list[torch.Generator]:
    """One generator per model for random methods, seeded from the tensor's seed and the model's place."""
    if not plan.method.random:
        return []
    return [
        torch.Generator().manual_seed((task.seed + 7919 * (index + 1)) & 0x7FFF_FFFF_FFFF_FFFF)
        for index in range(len(task.inputs))
    ]


def _run_kernel(plan: Plan, task: TensorTask, kernel, inputs: MergeInputs) -> torch.Tensor:
    with torch.no_grad():
        result = kernel(inputs)
    if not all_finite(result):
        settings = ", ".join(f"{key}={value}" for key, value in task.options.items()) or "defaults"
        raise MergeError(
            f"Tensor {task.name} came out with NaN or Inf from {plan.method.name} ({settings}); "
            "check the inputs and parameters. Nothing was written at the output path."
        )
    return result.to(TORCH_DTYPES[task.dtype])


def _checked(tensor: torch.Tensor, ref: InputTensor, allow_nonfinite: bool) -> torch.Tensor:
    if not allow_nonfinite and not all_finite(tensor):
        raise BadInputError(
            f"Input tensor {ref.entry.name} of {ref.model} ({ref.entry.file}) holds NaN or Inf, so the model is "
            "damaged; replace it, or pass --allow-nonfinite if the method drops those values."
        )
    return tensor


def _prepare(reader: TensorReader, ref: InputTensor, device: str, allow_nonfinite: bool) -> torch.Tensor:
    tensor = _checked(reader.read(ref.entry).to(device=device, dtype=torch.float32), ref, allow_nonfinite)
    if ref.rows is None or ref.rows == tensor.shape[0]:
        return tensor
    if ref.rows < tensor.shape[0]:
        return tensor[: ref.rows]
    # New rows take the mean row of their own matrix: a zero row has no direction, which makes SLERP divide by 0.
    mean = tensor.mean(dim=0, keepdim=True)
    return torch.cat([tensor, mean.expand(ref.rows - tensor.shape[0], *tensor.shape[1:])])
