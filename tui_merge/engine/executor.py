"""Run a plan: read each task's inputs, merge them, write the result, report every step.

Tasks run one after another in plan order, so only the tensors of the task in
hand are in memory: peak memory is a few tensors, not a model. Cancellation
is checked between tensors. Any failure, cancel or interrupt removes the
partial folder, so nothing is ever left at the output path.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import torch

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
from tui_merge.engine.plan import InputTensor, Plan, TensorTask
from tui_merge.engine.reader import TORCH_DTYPES, TensorReader
from tui_merge.engine.writer import OutputWriter
from tui_merge.errors import TuiMergeError
from tui_merge.methods.inputs import MergeInputs
from tui_merge.vocab.alignment import align_rows


class MergeError(TuiMergeError):
    """The merge could not finish; nothing was written at the output path."""

    exit_code = 1


class MergeCancelled(TuiMergeError):
    """The user cancelled; nothing was written at the output path."""

    exit_code = 130


def resolve_device(name: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MergeError(f"Device {name} was asked for but torch sees no CUDA GPU; use --device cpu.")
    return name


def execute(
    plan: Plan,
    output: Path,
    *,
    on_event: EventCallback | None = None,
    cancel: threading.Event | None = None,
    replace: bool = False,
) -> MergeSummary:
    """Merge and write ``plan`` to ``output``; return what was produced."""
    emit = on_event or (lambda event: None)
    device = resolve_device(plan.config.tui_merge.device)
    writer = OutputWriter(plan, output, replace=replace)
    kernel = plan.method.load_kernel()
    started = time.monotonic()
    written = 0
    emit(MergeStarted(plan))
    for note in plan.vocabulary.notes:
        emit(Log("info", note))
    try:
        writer.start()
        with TensorReader() as reader:
            for shard in plan.shards:
                writer.open_shard(shard)
                for index in shard.tasks:
                    if cancel is not None and cancel.is_set():
                        raise MergeCancelled(f"Merge cancelled; nothing was written at {output}.")
                    task = plan.tasks[index]
                    writer.write_tensor(task, merge_task(plan, task, kernel, reader, device))
                    written += task.nbytes
                    emit(TensorMerged(index + 1, len(plan.tasks), task.name, task.nbytes, written))
                emit(ShardWritten(output / shard.file_name, writer.close_shard()))
            bytes_read = reader.bytes_read
        writer.finish()
    except BaseException as error:
        writer.abandon()
        emit(MergeFailed(getattr(error, "message", None) or f"{type(error).__name__}: {error}"))
        raise
    summary = MergeSummary(output, len(plan.tasks), written, bytes_read, time.monotonic() - started)
    emit(MergeFinished(summary))
    return summary


def merge_task(plan: Plan, task: TensorTask, kernel, reader: TensorReader, device: str) -> torch.Tensor:
    """Compute one output tensor in float32 on ``device`` and cast it to the output dtype."""
    if not task.merge:
        return reader.read(task.inputs[0].entry)
    tensors = [_prepare(reader, ref, device) for ref in task.inputs]
    base = _prepare(reader, task.base, device) if task.base else None
    if task.vocab is not None:
        extra = [ref for ref in (task.base, task.fill_from) if ref is not None]
        matrices = [*zip([ref.model for ref in task.inputs], tensors)]
        matrices += [(ref.model, base if ref is task.base else _prepare(reader, ref, device)) for ref in extra]
        aligned = align_rows(matrices, task.vocab)
        tensors, base = aligned[: len(tensors)], (aligned[len(tensors)] if base is not None else None)
    inputs = MergeInputs(
        tensors=tensors,
        params=[dict(params) for params in task.model_params],
        base=base,
        options=dict(task.options),
        generator=torch.Generator().manual_seed(task.seed) if plan.method.random else None,
    )
    with torch.no_grad():
        result = kernel(inputs)
    if not bool(torch.isfinite(result).all()):
        settings = ", ".join(f"{key}={value}" for key, value in task.options.items()) or "defaults"
        raise MergeError(
            f"Tensor {task.name} came out with NaN or Inf from {plan.method.name} ({settings}); "
            "check the inputs and parameters. Nothing was written at the output path."
        )
    return result.to(TORCH_DTYPES[task.dtype])


def _prepare(reader: TensorReader, ref: InputTensor, device: str) -> torch.Tensor:
    tensor = reader.read(ref.entry).to(device=device, dtype=torch.float32)
    if ref.rows is None or ref.rows == tensor.shape[0]:
        return tensor
    if ref.rows < tensor.shape[0]:
        return tensor[: ref.rows]
    # New rows take the mean row of their own matrix: a zero row has no direction, which makes SLERP divide by 0.
    mean = tensor.mean(dim=0, keepdim=True)
    return torch.cat([tensor, mean.expand(ref.rows - tensor.shape[0], *tensor.shape[1:])])
