"""One output tensor's task and its inputs, and the shard layout of a merge's tasks.

A task knows its output shape and dtype before anything is read, so the shard layout is fixed up front and
the writer can put each shard's header first and stream the data after it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from tui_merge.models.checkpoint import TensorEntry
from tui_merge.models.safetensors_header import DTYPE_SIZES
from tui_merge.vocab.alignment import VocabAlignment

OUTPUT_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
"""The output dtypes a config can ask for, by torch name, and their safetensors names."""


@dataclass(frozen=True)
class InputTensor:
    """One input of a task: which model, which stored tensor, and how to fit its rows."""

    model: str
    entry: TensorEntry
    rows: int | None = None
    """Rows to truncate or pad to when vocabularies differ; None to use as stored."""


@dataclass(frozen=True)
class TensorTask:
    """How to produce one output tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    """safetensors dtype of the output."""
    inputs: tuple[InputTensor, ...]
    """The method's inputs in config order (the base excluded when the method takes one)."""
    model_params: tuple[dict[str, Any], ...]
    base: InputTensor | None
    options: dict[str, Any]
    seed: int
    merge: bool = True
    """False for tensors copied as they are (integer buffers)."""
    vocab: VocabAlignment | None = None
    """For a vocabulary matrix whose rows match by token: where each row comes from in each model."""
    fill_from: tuple[InputTensor, ...] = ()
    """Matrices read only for their rows, when the method itself does not read them: the base's (it fills rows
    other models lack) and those of models a ``tokenizer.tokens`` override names."""
    quantize: tuple[int, int] | None = None
    """Block size when the merged tensor is written as block-scaled FP8 (``tui_merge.quantize: fp8``)."""
    scales_of: str | None = None
    """For the ``..._scale_inv`` tensor of a quantized output weight: that weight's name (its scales come from
    quantizing it)."""
    expert_matrices: int = 0
    """For a mixture of experts' matrices stored fused, one expert per index of the first dimension
    (``mlp.experts.gate_up_proj`` [experts, ...]): how many matrices each expert's slice concatenates (gate and
    up: 2), each merged as a tensor of its own, as per-expert checkpoints are; 0 for any other tensor."""

    @property
    def reads(self) -> tuple[InputTensor, ...]:
        """Every stored tensor the task reads."""
        return tuple(ref for ref in (*self.inputs, self.base, *self.fill_from) if ref is not None)

    @property
    def nbytes(self) -> int:
        """Bytes this tensor takes in the output."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count * DTYPE_SIZES[self.dtype]


@dataclass(frozen=True)
class Shard:
    """One output file and the tasks whose tensors it holds, in order."""

    file_name: str
    tasks: tuple[int, ...]
    size: int


def quantized_tasks(tasks: tuple[TensorTask, ...], block: tuple[int, int]) -> tuple[TensorTask, ...]:
    """``tasks`` with every merged weight that came from block-scaled FP8 inputs written as FP8 again, each
    followed by the ``..._scale_inv`` tensor of its block scales (as the inputs store them)."""
    from tui_merge.models.quantization import SCALE_SUFFIX

    result = []
    for task in tasks:
        if not (task.merge and task.inputs and all(ref.entry.scale is not None for ref in task.inputs)):
            result.append(task)
            continue
        result.append(replace(task, dtype="F8_E4M3", quantize=block))
        scale_shape = tuple(-(-size // step) for size, step in zip(task.shape, block))
        result.append(replace(task, name=task.name + SCALE_SUFFIX, shape=scale_shape, dtype="F32",
                              scales_of=task.name))  # fmt: skip
    return tuple(result)


def tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed from the config seed and the output name: independent of order and threads."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def layout_shards(tasks: tuple[TensorTask, ...], limit: int) -> tuple[Shard, ...]:
    """The tasks in order, in shards of at most ``limit`` bytes (a larger tensor gets a shard of its own), named
    as transformers names them."""
    groups: list[list[int]] = [[]]
    sizes = [0]
    for index, task in enumerate(tasks):
        if groups[-1] and sizes[-1] + task.nbytes > limit:
            groups.append([])
            sizes.append(0)
        groups[-1].append(index)
        sizes[-1] += task.nbytes
    count = len(groups)
    names = (
        ["model.safetensors"]
        if count == 1
        else [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    )
    return tuple(Shard(name, tuple(group), size) for name, group, size in zip(names, groups, sizes))
