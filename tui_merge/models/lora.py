"""``model+adapter`` references: a PEFT LoRA adapter applied to a model's weights as they are read.

mergekit takes ``path/to/model+path/to/adapter`` wherever a model goes. The
adapter (``adapter_config.json`` and ``adapter_model.safetensors`` or
``.bin``, as PEFT saves them) changes each targeted weight to
``W + scale * B @ A`` with ``scale = lora_alpha / r`` (``lora_alpha / sqrt(r)``
with ``use_rslora``), transposed for ``fan_in_fan_out`` layers and for
embeddings (``lora_embedding_A``/``_B``); ``alpha_pattern`` overrides alpha per
module as PEFT matches it, and each module's ``r`` is its A matrix's rows.
Tensors the adapter stores whole (``modules_to_save``, trained biases, the
embedding PEFT saves under a targeted embedding as its ``base_layer``) take
the base's place. No merged copy is written anywhere: the reader adds the
update to each tensor, or to each block of rows, as the merge streams it.

A reference whose whole text is an existing folder is that folder, so a
path holding ``+`` still works; otherwise it splits at its one ``+``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_merge.errors import BadInputError
from tui_merge.models.checkpoint import Checkpoint, TensorEntry
from tui_merge.models.json_file import read_json_object

if TYPE_CHECKING:
    import torch

    from tui_merge.models.reader import TensorReader
    from tui_merge.models.resolve import ResolvedModel

_PREFIX = "base_model.model."
_PAIR = re.compile(r"^(?P<module>.+)\.lora_(?P<embedding>embedding_)?(?P<side>[AB])(?:\.weight)?$")


@dataclass(frozen=True)
class LoraUpdate:
    """The low-rank change of one weight: ``scale * B @ A``, transposed where the layer stores it so."""

    a: TensorEntry
    b: TensorEntry
    scale: float
    transpose: bool
    """True for fan_in_fan_out layers and embeddings: the update is ``(B @ A)^T``."""

    @property
    def files(self) -> tuple[Path, ...]:
        """The adapter files the update reads."""
        return tuple(dict.fromkeys((self.a.file, self.b.file)))

    def delta(self, reader: TensorReader, start: int | None = None, stop: int | None = None) -> torch.Tensor:
        """The update in float32, or its rows ``start:stop``."""
        a, b = reader.read(self.a).float(), reader.read(self.b).float()
        if self.transpose:  # rows of (B @ A)^T are columns of A
            a_part = a if start is None else a[:, start:stop]
            return (a_part.T @ b.T).mul_(self.scale)
        b_part = b if start is None else b[start:stop]
        return (b_part @ a).mul_(self.scale)


@dataclass(frozen=True)
class LoraAdapter:
    """An adapter folder, read and checked against its settings."""

    folder: Path
    rank: int
    """``r`` of adapter_config.json (modules may differ: see ``rank_pattern``)."""
    updates: dict[str, LoraUpdate]
    """By the name of the weight each changes (``model.layers.0.self_attn.q_proj.weight``)."""
    replacements: dict[str, TensorEntry]
    """Tensors the adapter stores whole, by the base tensor's name."""

    @property
    def label(self) -> str:
        """The adapter's folder name."""
        return self.folder.name


def split_reference(argument: str) -> tuple[str, str | None]:
    """``model+adapter`` as (model, adapter); a reference without an adapter as (it, None)."""
    if "+" not in argument or Path(argument).expanduser().exists():
        return argument, None
    parts = argument.split("+")
    if len(parts) != 2 or not all(parts):
        raise BadInputError(
            f"{argument} is not MODEL or MODEL+ADAPTER (one '+' between a model and a LoRA adapter folder)."
        )
    return parts[0], parts[1]


def resolve_reference(argument: str, cache_dir: Path | None = None) -> ResolvedModel:
    """The model folder of ``argument``, and its adapter folder for ``model+adapter`` (local folders or cached
    hub ids, like any model); BadInputError naming the part that is not here."""
    from tui_merge.models.resolve import resolve_model

    model_argument, adapter_argument = split_reference(argument)
    source = resolve_model(model_argument, cache_dir)
    if adapter_argument is None:
        return source
    adapter = resolve_model(adapter_argument, cache_dir, marker="adapter_config.json").folder
    return dataclasses.replace(source, argument=argument, adapter=adapter)


def read_adapter(folder: Path) -> LoraAdapter:
    """The LoRA adapter in ``folder``; BadInputError naming the file when it cannot be used."""
    settings_path = folder / "adapter_config.json"
    if not folder.is_dir():
        raise BadInputError(f"Adapter folder {folder} does not exist.")
    if not settings_path.is_file():
        raise BadInputError(f"{folder} has no adapter_config.json, so it is not a PEFT adapter folder.")
    settings = read_json_object(settings_path, fix="save the adapter again with PEFT")
    peft_type = settings.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise BadInputError(f"{settings_path} describes a {peft_type} adapter; only LoRA adapters can be applied.")
    if settings.get("use_dora"):
        raise BadInputError(f"{settings_path} is a DoRA adapter (use_dora), which cannot be applied here.")
    rank, alpha = settings.get("r"), settings.get("lora_alpha", settings.get("r"))
    if type(rank) is not int or rank < 1 or isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise BadInputError(f"{settings_path} needs r (a whole number of at least 1) and lora_alpha (a number).")
    fan_in_fan_out, rslora = settings.get("fan_in_fan_out", False), settings.get("use_rslora", False)
    if not isinstance(fan_in_fan_out, bool) or not isinstance(rslora, bool):
        raise BadInputError(f"{settings_path}: fan_in_fan_out and use_rslora must be true or false.")
    patterns = settings.get("alpha_pattern") or {}
    if not isinstance(patterns, dict):
        raise BadInputError(f"{settings_path}: alpha_pattern must map module names to numbers.")
    tensors = _adapter_tensors(folder)
    pairs: dict[str, dict[str, TensorEntry]] = {}
    replacements: dict[str, TensorEntry] = {}
    embeddings: set[str] = set()
    for name, entry in tensors.items():
        plain = name.removeprefix(_PREFIX)
        match = _PAIR.match(plain)
        if match is None:
            # modules_to_save copies and the saved embedding under a targeted embedding (its base_layer)
            replacements[plain.replace(".modules_to_save.default.", ".").replace(".base_layer.", ".")] = entry
            continue
        pairs.setdefault(match["module"], {})[match["side"]] = entry
        if match["embedding"]:
            embeddings.add(match["module"])
    updates = {}
    for module, sides in pairs.items():
        if set(sides) != {"A", "B"}:
            present, missing = ("A", "B") if "A" in sides else ("B", "A")
            raise BadInputError(
                f"The adapter in {folder} has lora_{present} for {module} but no lora_{missing}; the adapter file "
                "is damaged."
            )
        a, b = sides["A"], sides["B"]
        module_rank = a.shape[0] if len(a.shape) == 2 else 0
        if len(a.shape) != 2 or len(b.shape) != 2 or b.shape[1] != module_rank:
            raise BadInputError(
                f"The adapter in {folder} has lora_A {list(a.shape)} and lora_B {list(b.shape)} for {module}, "
                "which do not form a low-rank pair (A is [r, in], B is [out, r])."
            )
        module_alpha = _pattern_value(patterns, module, alpha)
        scale = module_alpha / (math.sqrt(module_rank) if rslora else module_rank)
        embedding = module in embeddings
        updates[f"{module}.weight"] = LoraUpdate(a, b, float(scale), transpose=fan_in_fan_out or embedding)
    if not updates and not replacements:
        raise BadInputError(f"The adapter in {folder} holds no LoRA weights.")
    return LoraAdapter(folder, rank, updates, replacements)


def apply_adapter(checkpoint: Checkpoint, adapter: LoraAdapter, model: str) -> Checkpoint:
    """``checkpoint`` with each targeted tensor reading its update, and the adapter's whole tensors in place;
    BadInputError for a target the model lacks or a shape that does not fit (``model`` names it)."""
    tensors = dict(checkpoint.tensors)
    # Whole tensors first: a targeted embedding's saved base_layer is the weight its update applies to.
    for name, stored in adapter.replacements.items():
        entry = tensors.get(name)
        if entry is None or entry.shape != stored.shape:
            shape = "missing" if entry is None else f"{list(entry.shape)}"
            raise BadInputError(
                f"The adapter in {adapter.folder} stores {name} {list(stored.shape)} whole, but {model} has it "
                f"{shape}; the adapter was trained for another model."
            )
        tensors[name] = replace(stored, name=name)
    for name, update in adapter.updates.items():
        entry = tensors.get(name)
        if entry is None:
            raise BadInputError(
                f"The adapter in {adapter.folder} changes {name}, which {model} does not have; the adapter was "
                "trained for another model (or its target_modules name other layers)."
            )
        out, into = update.b.shape[0], update.a.shape[1]
        if tuple(entry.shape) != ((into, out) if update.transpose else (out, into)):
            raise BadInputError(
                f"The adapter in {adapter.folder} changes {name} {list(entry.shape)} with lora_B {list(update.b.shape)}"
                f" and lora_A {list(update.a.shape)}, which do not fit it; the adapter was trained for another model."
            )
        tensors[name] = replace(entry, lora=update)
    files = tuple(dict.fromkeys((*checkpoint.files, *(entry.file for entry in adapter.replacements.values()))))
    return Checkpoint(format=checkpoint.format, files=files, tensors=tensors)


def _adapter_tensors(folder: Path) -> dict[str, TensorEntry]:
    from tui_merge.models.checkpoint import file_tensors

    for file_name, fmt in (("adapter_model.safetensors", "safetensors"), ("adapter_model.bin", "bin")):
        if (folder / file_name).is_file():
            return file_tensors(folder / file_name, fmt)
    raise BadInputError(f"{folder} has no adapter_model.safetensors (or adapter_model.bin) beside its config.")


def _pattern_value(patterns: dict[str, Any], module: str, default: float) -> float:
    """PEFT's rule: a pattern applies to a module whose name ends with it, at a dot."""
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module) and isinstance(value, (int, float)):
            return float(value)
    return float(default)
