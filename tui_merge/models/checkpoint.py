"""Find a model folder's weight files and build its tensor table from headers alone.

Supported layouts, in order of preference when a folder has several:
``*.safetensors.index.json`` with its shards, ``*.safetensors`` files,
``pytorch_model.bin.index.json`` with its shards, ``pytorch_model*.bin``.
Safetensors wins because it is read without unpickling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tui_merge.errors import BadInputError
from tui_merge.models.json_file import MAX_INDEX_BYTES, read_json_object
from tui_merge.models.safetensors_header import DTYPE_SIZES, read_safetensors_header
from tui_merge.models.torch_checkpoint import load_torch_state_dict, safetensors_dtype, tensor_byte_ranges

if TYPE_CHECKING:
    from tui_merge.models.hub import HubRepo
    from tui_merge.models.lora import LoraUpdate
    from tui_merge.models.quantization import BlockScale

CheckpointFormat = Literal["safetensors", "bin"]


@dataclass(frozen=True)
class TensorEntry:
    """Where one stored tensor lives and what it looks like."""

    name: str
    dtype: str
    """safetensors dtype name, e.g. ``BF16``."""
    shape: tuple[int, ...]
    file: Path
    begin: int | None = None
    """Absolute byte offset in ``file``; None for a ``.bin`` tensor read through its mapped state dict."""
    end: int | None = None
    lora: LoraUpdate | None = None
    """A LoRA adapter's change, added when the tensor is read (``models.lora``)."""
    scale: BlockScale | None = None
    """Per-block scales of a block-scaled FP8 weight, applied when it is read (``models.quantization``)."""
    hub: HubRepo | None = None
    """The Hub repository that ``file`` (its snapshot path in the cache) comes from, when it was not downloaded
    at inspection: its bytes are read by range until it is (``models.hub``)."""

    @property
    def downloaded(self) -> bool:
        """False for a tensor of a Hub repository whose file is not in the cache yet."""
        return self.hub is None or self.file.is_file()

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file the tensor's values come from: its own, its scales' and its adapter's."""
        scales = (self.scale.entry.file,) if self.scale is not None else ()
        return (self.file, *scales, *(self.lora.files if self.lora is not None else ()))

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Size of the stored data in bytes."""
        return self.numel * DTYPE_SIZES[self.dtype]


@dataclass(frozen=True)
class Checkpoint:
    """The weight files of one model folder and every tensor in them."""

    format: CheckpointFormat
    files: tuple[Path, ...]
    tensors: dict[str, TensorEntry]


def read_checkpoint(folder: Path) -> Checkpoint:
    """Read the tensor table of the model in ``folder`` without loading tensor data."""
    safetensors_indexes = sorted(folder.glob("*.safetensors.index.json"))
    if safetensors_indexes:
        return _from_index(_only(safetensors_indexes, folder), "safetensors")
    safetensors_files = sorted(folder.glob("*.safetensors"))
    if safetensors_files:
        return _from_files(safetensors_files, "safetensors")
    bin_index = folder / "pytorch_model.bin.index.json"
    if bin_index.is_file():
        return _from_index(bin_index, "bin")
    bin_files = sorted(folder.glob("pytorch_model*.bin"))
    if bin_files:
        return _from_files(bin_files, "bin")
    raise BadInputError(
        f"{folder} holds no model weights: expected model.safetensors, a *.safetensors.index.json "
        "with its shards, or pytorch_model.bin."
    )


def weights_complete(folder: Path) -> bool:
    """True when ``folder`` holds every weight file its layout names: each shard of an index, or the files
    themselves. A cached repository whose metadata alone was fetched (a preflight) holds none."""
    indexes = sorted(folder.glob("*.safetensors.index.json")) or sorted(folder.glob("pytorch_model.bin.index.json"))
    if indexes:
        try:
            shards = set(_read_weight_map(_only(indexes, folder)).values())
        except BadInputError:
            return True  # damaged: let the reader say so
        return all((folder / shard).is_file() for shard in shards)
    return any(folder.glob("*.safetensors")) or any(folder.glob("pytorch_model*.bin"))


def read_hub_checkpoint(repo: HubRepo) -> Checkpoint:
    """The tensor table of a Hub repository from its safetensors headers, read by range (a shard already in the
    cache is read there); its index was fetched with the metadata."""
    folder = repo.snapshot
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        index = _only(indexes, folder)
        weight_map = _read_weight_map(index)
        shards = sorted(set(weight_map.values()))
    else:
        weight_map = None
        shards = sorted(name for name in repo.files if "/" not in name and name.endswith(".safetensors"))
    if not shards:
        bins = sorted(name for name in repo.files if "/" not in name and name.endswith(".bin"))
        if bins:
            fetch = f"hf download {repo.repo_id} --revision {repo.commit} --include '*.bin' '*.json'"
            raise BadInputError(
                f"{repo.repo_id} on the Hub stores its weights only as PyTorch .bin files, whose tensor table "
                f"cannot be read without downloading them; fetch them with `{fetch}`, then inspect again."
            )
        raise BadInputError(f"{repo.repo_id} on the Hub holds no safetensors weights; it cannot be merged.")
    missing = [shard for shard in shards if shard not in repo.files]
    if missing:
        raise BadInputError(
            f"{repo.repo_id}'s weight index names {missing[0]}, which the repository does not have; "
            "its index and shards disagree: tell its owners, or pick another revision."
        )
    remote = [shard for shard in shards if not (folder / shard).is_file()]
    headers = repo.headers(remote)
    tables: dict[str, dict[str, TensorEntry]] = {}
    for shard in shards:
        path = folder / shard
        if shard in headers:
            tables[shard] = {
                name: TensorEntry(name, entry.dtype, entry.shape, path, entry.begin, entry.end, hub=repo)
                for name, entry in headers[shard].items()
            }
        else:
            tables[shard] = file_tensors(path, "safetensors")
    if weight_map is None:
        return _joined({folder / shard: table for shard, table in tables.items()}, "safetensors")
    files = tuple(folder / shard for shard in shards)
    where = f"{repo.repo_id}'s weight index"
    return _mapped(weight_map, tables, Checkpoint("safetensors", files, {}), where, "tell its owners, or pick "
                   "another revision")  # fmt: skip


def _only(indexes: list[Path], folder: Path) -> Path:
    preferred = folder / "model.safetensors.index.json"
    if preferred in indexes:
        return preferred
    if len(indexes) > 1:
        names = ", ".join(index.name for index in indexes)
        raise BadInputError(f"{folder} has several weight indexes ({names}); keep one of them in the folder.")
    return indexes[0]


def _from_files(files: list[Path], fmt: CheckpointFormat) -> Checkpoint:
    return _joined({file: file_tensors(file, fmt) for file in files}, fmt)


def _joined(tables: dict[Path, dict[str, TensorEntry]], fmt: CheckpointFormat) -> Checkpoint:
    """One table from several weight files' tables (by file), none of them repeating a tensor of another."""
    tensors: dict[str, TensorEntry] = {}
    for file, table in tables.items():
        for entry in table.values():
            if entry.name in tensors:
                raise BadInputError(
                    f"Tensor {entry.name!r} is stored in both {tensors[entry.name].file} and {file}; "
                    "remove the stray weight file from the folder."
                )
            tensors[entry.name] = entry
    return Checkpoint(format=fmt, files=tuple(tables), tensors=tensors)


def _from_index(index: Path, fmt: CheckpointFormat) -> Checkpoint:
    weight_map = _read_weight_map(index)
    shards = sorted(set(weight_map.values()))
    tables: dict[str, dict[str, TensorEntry]] = {}
    for shard in shards:
        path = index.parent / shard
        if not path.is_file():
            raise BadInputError(
                f"{index} names shard {shard}, which is missing from {index.parent}; download the missing shard."
            )
        tables[shard] = file_tensors(path, fmt)
    files = tuple(index.parent / shard for shard in shards)
    return _mapped(weight_map, tables, Checkpoint(fmt, files, {}), str(index), "the index and the shards come "
                   "from different downloads")  # fmt: skip


def _mapped(
    weight_map: dict[str, str], tables: dict[str, dict[str, TensorEntry]], empty: Checkpoint, where: str, why: str
) -> Checkpoint:
    """``empty`` holding every tensor of an index's ``weight_map``, found in its shard's table; a tensor the
    index places in a shard that lacks it is refused (``where`` names the index, ``why`` says what to do)."""
    for name, shard in weight_map.items():
        entry = tables[shard].get(name)
        if entry is None:
            raise BadInputError(
                f"{where} says tensor {name!r} is in {shard}, but that shard does not contain it; {why}."
            )
        empty.tensors[name] = entry
    return empty


def _read_weight_map(index: Path) -> dict[str, str]:
    data = read_json_object(index, limit=MAX_INDEX_BYTES, fix="download the index again")
    weight_map = data.get("weight_map")
    if not isinstance(weight_map, dict) or not all(
        isinstance(name, str) and isinstance(shard, str) for name, shard in weight_map.items()
    ):
        raise BadInputError(f"{index} has no 'weight_map' from tensor names to shard files.")
    for shard in set(weight_map.values()):
        if Path(shard).name != shard:
            raise BadInputError(f"{index} names shard {shard!r}, which is not a plain file name in the model folder.")
    return weight_map


def file_tensors(path: Path, fmt: CheckpointFormat) -> dict[str, TensorEntry]:
    if fmt == "safetensors":
        return {
            name: TensorEntry(name, header.dtype, header.shape, path, header.begin, header.end)
            for name, header in read_safetensors_header(path).items()
        }
    tensors = load_torch_state_dict(path)
    ranges = tensor_byte_ranges(path, tensors)
    return {
        name: TensorEntry(name, safetensors_dtype(tensor), tuple(tensor.shape), path, *ranges.get(name, (None, None)))
        for name, tensor in tensors.items()
    }
