"""What each fine-tune changed, layer by layer: the figures behind the Layers step and ``inspect --layers``.

For every layer and component (attention, MLP, norms, and ``other`` for
what is left: embeddings, head, anything unclassified) and every model
other than the reference (the base, else the first model):

- its relative change ``‖W_model − W_ref‖ / ‖W_ref‖``, the Frobenius norms
  taken over the concatenation of the component's tensors;
- for each pair of those models, the cosine between their task vectors
  ``W − W_ref`` over the same tensors: near 1 where two fine-tunes moved the
  weights the same way, near 0 where they are unrelated, negative where
  they fight. None where either task vector is zero.

A layer of the main stack is named by its index; a layer of another stack
(a vision tower) by its prefix and index, ``visual.blocks.3``, so a tower's
layer 3 is never pooled with the language model's.

Tensors are read a block of rows at a time, as the merge reads them (flat
memory, nothing written); sums are float64. Only floating-point tensors
with the reference's shape in every model count (a resized vocabulary's
embeddings do not). The figures are cached in the user cache folder
(``TUI_MERGE_CACHE``, else ``$XDG_CACHE_HOME/tui-merge``, else
``~/.cache/tui-merge``) under a key made of every model file's identity
(path, size, modification time, tensor table), so reopening is instant and
a changed file is measured again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from tui_merge.models.info import ModelInfo
from tui_merge.models.safetensors_header import FLOAT_DTYPES
from tui_merge.user_cache import cache_folder

COMPONENTS = ("attention", "mlp", "norm", "other")
"""The components figures are given for, in display order."""

_GROUP = {"attn": "attention", "mlp": "mlp", "norm": "norm"}

_CACHE_VERSION = 2

Layer = int | str | None
"""A main-stack layer's index, ``prefix.index`` for another stack's layer, None outside the layers."""

Progress = Callable[[int, int], None]
"""Called with (bytes read so far, bytes to read)."""


class MeasureStopped(Exception):
    """The measurement was stopped at a checkpoint; nothing is cached."""


@dataclass(frozen=True)
class LayerChange:
    """How far one model moved one component of one layer (``layer`` None: outside the layers)."""

    model: str
    layer: Layer
    component: str
    relative_change: float | None
    """None when the reference's norm there is zero."""


@dataclass(frozen=True)
class PairCosine:
    """Whether two models moved one component of one layer the same way."""

    models: tuple[str, str]
    layer: Layer
    component: str
    cosine: float | None


@dataclass(frozen=True)
class ChangeReport:
    """Every figure, with the models named as the caller named them."""

    reference: str
    changes: list[LayerChange]
    pairs: list[PairCosine]

    def change(self, model: str, layer: Layer, component: str) -> float | None:
        """One model's relative change, or None when it was not measured."""
        return self._changes.get((model, layer, component))

    def cosine(self, first: str, second: str, layer: Layer, component: str) -> float | None:
        """The cosine of two models' task vectors, or None."""
        return self._pairs.get((first, second, layer, component), self._pairs.get((second, first, layer, component)))

    @property
    def _changes(self) -> dict[tuple[str, Layer, str], float | None]:
        return {(item.model, item.layer, item.component): item.relative_change for item in self.changes}

    @property
    def _pairs(self) -> dict[tuple[str, str, Layer, str], float | None]:
        return {(*item.models, item.layer, item.component): item.cosine for item in self.pairs}

    def to_json(self) -> dict[str, Any]:
        """``{"layers": [...], "pairs": [...]}`` as ``inspect --layers --json`` adds it."""
        return {
            "layers": [
                {"model": item.model, "layer": item.layer, "component": item.component,
                 "relative_change": item.relative_change}
                for item in self.changes
            ],
            "pairs": [
                {"models": list(item.models), "layer": item.layer, "component": item.component, "cosine": item.cosine}
                for item in self.pairs
            ],
        }  # fmt: skip


def measure_changes(
    models: list[tuple[str, ModelInfo]],
    reference: tuple[str, ModelInfo] | None = None,
    *,
    on_progress: Progress | None = None,
    checkpoint: Callable[[], bool] | None = None,
    cache: bool = True,
) -> ChangeReport:
    """The figures for ``models`` (name as given, info) against ``reference`` (default: the first model).

    The reference itself gets no figures. ``checkpoint`` is called between blocks of rows (a merge
    control's ``checkpoint``, which may hold a paused measure); True stops it with ``MeasureStopped``.
    """
    reference = reference or models[0]
    others = [(name, info) for name, info in models if info is not reference[1]]
    infos = [reference[1], *(info for _, info in others)]
    path = _cache_path(infos) if cache else None
    figures = _load_cached(path)
    if figures is None:
        figures = _measure(infos, on_progress, checkpoint)
        _store(path, figures)
    names = [name for name, _ in others]
    changes = [
        LayerChange(names[index], layer, component, value) for (index, layer, component), value in figures["changes"]
    ]
    pairs = [
        PairCosine((names[first], names[second]), layer, component, value)
        for (first, second, layer, component), value in figures["pairs"]
    ]
    return ChangeReport(reference[0], changes, pairs)


def _measure(
    infos: list[ModelInfo], on_progress: Progress | None, checkpoint: Callable[[], bool] | None
) -> dict[str, Any]:
    """Sums of squares and dot products per (layer, component), turned into the figures.

    Figures are keyed by model index (0 is the first model after the reference), so they can be cached
    whatever the models are called.
    """
    from tui_merge.models.reader import TensorReader, row_blocks

    reference, others = infos[0], infos[1:]
    tensors = _shared_tensors(reference, others)
    total = sum(reference.tensors[name].nbytes + sum(info.tensors[name].nbytes for info in others)
                for name in tensors)  # fmt: skip
    groups: dict[tuple[Layer, str], _Sums] = {}
    done = 0
    with TensorReader() as reader:
        for name in tensors:
            role = reference.roles[name]
            sums = groups.setdefault((layer_key(reference, name), _GROUP.get(role.component, "other")),
                                     _Sums(len(others)))  # fmt: skip
            entries = [reference.tensors[name], *(info.tensors[name] for info in others)]
            for start, stop in row_blocks(entries[0].shape) if entries[0].shape else [(0, 1)]:
                if checkpoint is not None and checkpoint():
                    raise MeasureStopped
                blocks = [_rows(reader, entry, start, stop) for entry in entries]
                sums.add(blocks[0], blocks[1:])
            done += sum(entry.nbytes for entry in entries)
            if on_progress is not None:
                on_progress(done, total)
    order = sorted(groups, key=lambda key: (_layer_order(key[0]), COMPONENTS.index(key[1])))
    changes, pairs = [], []
    for layer, component in order:
        sums = groups[(layer, component)]
        for index in range(len(others)):
            changes.append(((index, layer, component), sums.relative_change(index)))
        for first, second in combinations(range(len(others)), 2):
            pairs.append(((first, second, layer, component), sums.cosine(first, second)))
    return {"changes": changes, "pairs": pairs}


def layer_key(info: ModelInfo, name: str) -> Layer:
    """The layer a tensor's figures go with: its index in the main stack, ``prefix.index`` in another."""
    role = info.roles[name]
    if role.layer is None or role.block_prefix == info.block_prefix:
        return role.layer
    return stack_layer(role.block_prefix, role.layer)


def stack_layer(prefix: str, layer: int) -> str:
    """How the figures name layer ``layer`` of the stack ``prefix`` beside the main one: ``visual.blocks.3``."""
    return f"{prefix.rstrip('.')}.{layer}"


def _layer_order(layer: Layer) -> tuple[int, str, int]:
    """Outside first, then the main stack's layers, then each other stack's, each in index order."""
    if layer is None:
        return (0, "", 0)
    if isinstance(layer, int):
        return (1, "", layer)
    prefix, _, index = layer.rpartition(".")
    return (2, prefix, int(index))


class _Sums:
    """Running float64 sums for one (layer, component)."""

    def __init__(self, models: int) -> None:
        self.reference_squares = 0.0
        self.squares = [0.0] * models
        self.dots: dict[tuple[int, int], float] = {pair: 0.0 for pair in combinations(range(models), 2)}

    def add(self, reference, others) -> None:
        import torch

        reference = reference.double()
        self.reference_squares += float(torch.sum(reference * reference))
        deltas = [other.double() - reference for other in others]
        for index, delta in enumerate(deltas):
            self.squares[index] += float(torch.sum(delta * delta))
        for first, second in self.dots:
            self.dots[(first, second)] += float(torch.sum(deltas[first] * deltas[second]))

    def relative_change(self, index: int) -> float | None:
        if self.reference_squares == 0:
            return None
        return math.sqrt(self.squares[index] / self.reference_squares)

    def cosine(self, first: int, second: int) -> float | None:
        scale = math.sqrt(self.squares[first] * self.squares[second])
        return None if scale == 0 else max(-1.0, min(1.0, self.dots[(first, second)] / scale))


def _shared_tensors(reference: ModelInfo, others: list[ModelInfo]) -> list[str]:
    """Floating-point tensors every model has with the reference's shape, in the reference's order."""
    return [
        name
        for name, entry in reference.tensors.items()
        if entry.dtype in FLOAT_DTYPES
        and all(
            name in info.tensors
            and info.tensors[name].shape == entry.shape
            and info.tensors[name].dtype in FLOAT_DTYPES
            for info in others
        )
    ]


def _rows(reader, entry, start: int, stop: int):
    import torch

    if not entry.shape:
        return reader.read(entry).to(torch.float32)
    return reader.read_rows(entry, start, stop).to(torch.float32)


def _cache_path(infos: list[ModelInfo]) -> Path:
    identity = hashlib.sha256(json.dumps([_CACHE_VERSION, *(_identity(info) for info in infos)]).encode())
    return cache_folder() / "layer-changes" / f"{identity.hexdigest()[:32]}.json"


def _identity(info: ModelInfo) -> list[Any]:
    """The model's files as they are now: a change to any of them changes the key."""
    files = []
    paths = {*info.checkpoint.files, *(file for entry in info.tensors.values() for file in entry.files)}
    for path in sorted(paths):
        status = path.stat()
        files.append([str(path.resolve()), status.st_size, status.st_mtime_ns])
    table = sorted((name, entry.dtype, list(entry.shape), entry.begin, entry.end,
                    entry.lora.scale if entry.lora else None) for name, entry in info.tensors.items())  # fmt: skip
    return [files, hashlib.sha256(json.dumps(table).encode()).hexdigest()]


def _load_cached(path: Path | None) -> dict[str, Any] | None:
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            "changes": [((index, layer, component), value) for (index, layer, component), value in data["changes"]],
            "pairs": [((first, second, layer, component), value)
                      for (first, second, layer, component), value in data["pairs"]],
        }  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache entry is measured again


def _store(path: Path | None, figures: dict[str, Any]) -> None:
    """Write the cache entry atomically; a cache that cannot be written is skipped, never an error."""
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(figures), encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass
