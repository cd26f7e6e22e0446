"""Merging one output tensor: whole, or a block of rows at a time, each input checked for NaN and Inf.

Which path a tensor takes (whole, blocks of an elementwise method, a block merger's passes, one matrix of fused
experts at a time) depends only on the plan, so a replay writes the same bytes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import replace

import torch

from tui_merge.engine.finiteness import all_finite, shared_infinities
from tui_merge.engine.merge_errors import MergeError
from tui_merge.engine.plan import Plan
from tui_merge.engine.tasks import InputTensor, TensorTask
from tui_merge.errors import BadInputError
from tui_merge.methods import draws
from tui_merge.methods.inputs import MergeInputs
from tui_merge.models.reader import BLOCK_BYTES as READ_BLOCK_BYTES
from tui_merge.models.reader import TORCH_DTYPES, TensorReader, part_entry, row_blocks
from tui_merge.vocab.alignment import align_rows


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
