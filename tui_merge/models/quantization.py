"""Quantized checkpoints: block-scaled FP8 is read as the values it stands for; every other kind is refused.

The official releases of DeepSeek V3/R1, Kimi K2 and many Qwen3 and MiniMax
models store each linear weight as ``float8_e4m3fn`` beside a
``<name>_scale_inv`` tensor of per-block scales (``quantization_config``:
``quant_method: fp8``, ``weight_block_size: [128, 128]``): the weight's value
at row i, column j is its FP8 code times the scale of block (i // 128,
j // 128). Merging the codes byte-wise averages numbers on different scales
and keeps averaged scales beside them: garbage. So such a weight is read as
the values it stands for (the scales are attached to its table entry and
applied as its rows are read, a block of rows at a time like any tensor),
merged in float32 and written in the recipe's dtype (bfloat16 by default).
On request (``tui_merge: {quantize: fp8}``) the merge is quantized again with
the inputs' block size (``quantize_fp8``).

Every other quantization (GPTQ, AWQ, bitsandbytes, compressed-tensors, HQQ,
FP8 without blocks, ...: any other ``quantization_config``, or weights packed
into integers) cannot be merged value by value here, and is refused before
anything is written with the method named.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_merge.errors import BadInputError

if TYPE_CHECKING:
    import torch

    from tui_merge.models.checkpoint import Checkpoint, TensorEntry
    from tui_merge.models.reader import TensorReader

SCALE_SUFFIX = "_scale_inv"
"""A block-scaled FP8 weight ``X.weight`` keeps its scales in ``X.weight_scale_inv``."""

FP8_DTYPES = frozenset({"F8_E4M3", "F8_E5M2"})

FP8_MAX = 448.0
"""The largest finite float8_e4m3fn value: a block's largest magnitude is scaled to it when quantizing."""

_PACKED = re.compile(r"\.(qweight|qzeros|g_idx|weight_packed|weight_zero_point|absmax|quant_map|SCB|nested_absmax)$")
"""Tensor names that only quantized checkpoints carry (GPTQ/AWQ, compressed-tensors, bitsandbytes)."""

_INTEGER_DTYPES = frozenset({"I8", "U8", "I16", "I32", "U32"})
"""Stored dtypes of packed quantized weights (int64 is left out: position ids and other buffers use it)."""


@dataclass(frozen=True)
class BlockScale:
    """The per-block scales of one FP8 weight, applied as its rows are read."""

    entry: TensorEntry
    """The ``..._scale_inv`` tensor: one scale per block of ``block`` rows and columns."""
    block: tuple[int, int]

    def apply(self, codes: torch.Tensor, reader: TensorReader, start: int) -> torch.Tensor:
        """Rows ``start:start + len(codes)`` of the weight in float32: each FP8 code times its block's scale."""
        rows_per_block, columns_per_block = self.block
        first = start // rows_per_block
        last = -(-(start + codes.shape[0]) // rows_per_block)
        scales = reader.read_rows(self.entry, first, last).float()
        offset = start - first * rows_per_block
        expanded = scales.repeat_interleave(rows_per_block, 0)[offset : offset + codes.shape[0]]
        expanded = expanded.repeat_interleave(columns_per_block, 1)[:, : codes.shape[1]]
        return codes.float().mul_(expanded)


@dataclass(frozen=True)
class Quantization:
    """How a model's weights are quantized."""

    method: str
    """``quantization_config.quant_method`` (``fp8``, ``gptq``, ...) or what the tensors show (``integer-packed``)."""
    block: tuple[int, int] | None = None
    """The FP8 block size, when the weights are read as their values; None when they cannot be merged."""

    @property
    def readable(self) -> bool:
        """True when tui-merge reads the weights as the values they stand for (block-scaled FP8)."""
        return self.block is not None

    def refusal(self, label: str) -> str:
        """Why a merge of this model is refused, in one sentence."""
        if self.method == "integer-packed":
            return (
                f"{label} stores its weights packed into integers (a quantized checkpoint without a "
                "quantization_config); merging packed weights byte by byte gives garbage, so merge the "
                "unquantized release of it instead."
            )
        return (
            f"{label} is quantized ({self.method}, config.json quantization_config); tui-merge reads only "
            "block-scaled FP8 as the values it stands for, and merging other quantized weights byte by byte gives "
            "garbage, so merge the unquantized release of it instead."
        )


def read_quantization(
    config: dict[str, Any], tensors: dict[str, TensorEntry], config_path: Path
) -> Quantization | None:
    """What ``config.json``'s ``quantization_config`` (else the tensors) say about the model's quantization."""
    declared = config.get("quantization_config")
    if declared is None:
        packed = next((name for name, entry in tensors.items() if _looks_packed(name, entry)), None)
        return Quantization("integer-packed") if packed is not None else None
    if not isinstance(declared, dict):
        raise BadInputError(f"{config_path} gives quantization_config as {declared!r}, which is not an object.")
    method = declared.get("quant_method")
    method = method if isinstance(method, str) and method else "unnamed method"
    block = declared.get("weight_block_size")
    if method == "fp8" and block is not None:
        if not (
            isinstance(block, list)
            and len(block) == 2
            and all(isinstance(size, int) and not isinstance(size, bool) and 0 < size <= 1 << 16 for size in block)
        ):
            raise BadInputError(
                f"{config_path} gives quantization_config.weight_block_size as {block!r}; it must be two whole "
                "numbers such as [128, 128]."
            )
        return Quantization(method, (block[0], block[1]))
    return Quantization(method)


def _looks_packed(name: str, entry: TensorEntry) -> bool:
    return _PACKED.search(name) is not None or (
        entry.dtype in _INTEGER_DTYPES and len(entry.shape) >= 2 and name.endswith(".weight")
    )


def with_block_scales(checkpoint: Checkpoint, block: tuple[int, int], folder: Path) -> Checkpoint:
    """The tensor table with every FP8 weight carrying its block scales, and the scale tensors taken out of it
    (they are part of the weight now, not tensors to merge)."""
    tensors = dict(checkpoint.tensors)
    for name, entry in checkpoint.tensors.items():
        if entry.dtype not in FP8_DTYPES:
            continue
        scale = tensors.pop(name + SCALE_SUFFIX, None)
        if scale is None:
            raise BadInputError(
                f"{folder}: FP8 tensor {name} has no {name + SCALE_SUFFIX} beside it, so its values cannot be "
                "known; download the model again."
            )
        wanted = tuple(math.ceil(size / step) for size, step in zip(entry.shape, block))
        if len(entry.shape) != 2 or tuple(scale.shape) != wanted or scale.dtype not in ("F32", "BF16", "F16"):
            raise BadInputError(
                f"{folder}: {name + SCALE_SUFFIX} is {scale.dtype} {list(scale.shape)}, but {name} "
                f"{list(entry.shape)} in blocks of {list(block)} needs float scales of shape {list(wanted)}; "
                "the config's weight_block_size does not match the weights."
            )
        tensors[name] = replace(entry, scale=BlockScale(scale, block))
    return replace(checkpoint, tensors=tensors)


def quantize_fp8(values: torch.Tensor, block: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``values`` (2-D, float32) as float8_e4m3fn codes and their per-block ``scale_inv`` (float32): each block's
    largest magnitude maps to ``FP8_MAX`` (an all-zero block gets scale 1), so code times scale gives the value
    back within FP8's rounding."""
    import torch

    rows, columns = values.shape
    rows_per_block, columns_per_block = block
    padded = torch.zeros(
        math.ceil(rows / rows_per_block) * rows_per_block,
        math.ceil(columns / columns_per_block) * columns_per_block,
        dtype=torch.float32,
        device=values.device,
    )
    padded[:rows, :columns] = values
    tiles = padded.reshape(padded.shape[0] // rows_per_block, rows_per_block, -1, columns_per_block)
    largest = tiles.abs().amax(dim=(1, 3))
    scale = torch.where(largest > 0, largest / FP8_MAX, torch.ones_like(largest))
    codes = (tiles / scale[:, None, :, None]).clamp_(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return codes.reshape(padded.shape)[:rows, :columns].contiguous(), scale
