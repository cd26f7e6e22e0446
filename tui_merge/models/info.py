"""ModelInfo: everything the later stages need to know about one model, without its weights."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tui_merge.models.checkpoint import Checkpoint, TensorEntry, read_checkpoint, read_hub_checkpoint
from tui_merge.models.config_facts import ConfigFacts, read_config_facts
from tui_merge.models.layout import TensorRole, classify_tensors, family_layout
from tui_merge.models.quantization import Quantization, read_quantization, with_block_scales
from tui_merge.models.resolve import ResolvedModel
from tui_merge.models.safetensors_header import FLOAT_DTYPES

# Position and token-type tables are embeddings too, and in small models can
# have more rows than the vocabulary, so the token table is found by name.
_TOKEN_EMBEDDING = re.compile(
    r"(^|\.)(embed_tokens|wte|word_embeddings|embed_in|tok_embeddings)\.weight$|^shared\.weight$"
)

SAFETENSORS_TO_TORCH_DTYPE = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """One model: where it is, what its config says, and its classified tensor table."""

    source: ResolvedModel
    facts: ConfigFacts
    checkpoint: Checkpoint
    roles: dict[str, TensorRole]
    """Layer and component of every tensor, by name."""
    quantization: Quantization | None = None
    """How the weights are quantized (block-scaled FP8 is read as its values; any other kind is refused)."""

    @property
    def folder(self) -> Path:
        """The local folder holding the model."""
        return self.source.folder

    @property
    def label(self) -> str:
        """Short display name."""
        return self.source.label

    @property
    def tensors(self) -> dict[str, TensorEntry]:
        """Every stored tensor, by name."""
        return self.checkpoint.tensors

    @cached_property
    def stored_tensors(self) -> dict[str, TensorEntry]:
        """Every tensor as the files store it: a block-scaled FP8 weight's scales under their own name too."""
        stored = {}
        for name, entry in self.tensors.items():
            stored[name] = entry
            if entry.scale is not None:
                stored[entry.scale.entry.name] = entry.scale.entry
        return stored

    @cached_property
    def stack_depths(self) -> dict[str, int]:
        """Every stack of numbered blocks (``model.layers``, a vision tower's ``vision_tower.encoder.layers``...)
        and how many blocks the weights hold in it."""
        layers: dict[str, set[int]] = {}
        for role in self.roles.values():
            if role.block_prefix is not None and role.layer is not None:
                layers.setdefault(role.block_prefix, set()).add(role.layer)
        return {prefix: len(indices) for prefix, indices in layers.items()}

    @cached_property
    def block_prefix(self) -> str | None:
        """Name prefix of the main stack of numbered blocks, e.g. ``model.layers``: the one as deep as config.json
        (or its text sub-config) says the model is, so a vision tower with more tensors is never taken for the
        language model; else the stack holding the most tensors."""
        counts = Counter(role.block_prefix for role in self.roles.values() if role.block_prefix)
        declared = [prefix for prefix, depth in self.stack_depths.items() if depth == self.facts.num_layers]
        if declared:
            return max(declared, key=lambda prefix: counts[prefix])
        return counts.most_common(1)[0][0] if counts else None

    @cached_property
    def tower_roots(self) -> tuple[str, ...]:
        """The name prefixes of the stacks beside the main one (``vision_tower``): each stack's shortest prefix
        that the main stack's does not share, so the tower's own embeddings and norms go with it."""
        main = (self.block_prefix or "").split(".")
        roots = []
        for prefix in self.stack_depths:
            if prefix == self.block_prefix:
                continue
            parts = prefix.split(".")
            shared = next((i for i, (a, b) in enumerate(zip(parts, main)) if a != b), min(len(parts), len(main)))
            roots.append(".".join(parts[: shared + 1]))
        return tuple(dict.fromkeys(roots))

    def in_tower(self, name: str) -> bool:
        """True for a tensor of a stack beside the main one, in its layers or around them."""
        return any(name == root or name.startswith(root + ".") for root in self.tower_roots)

    @cached_property
    def depth(self) -> int:
        """Number of numbered blocks found in the main stack's weights (not what config.json claims)."""
        return self.stack_depths.get(self.block_prefix, 0) if self.block_prefix else 0

    @cached_property
    def embedding_name(self) -> str | None:
        """The input token embedding: known token-embedding names first, else the largest embedding matrix."""
        candidates = [
            name
            for name, entry in self.tensors.items()
            if self.roles[name].component == "embed" and self.roles[name].layer is None and len(entry.shape) == 2
        ]
        named = [name for name in candidates if _TOKEN_EMBEDDING.search(name)]
        if named:
            return min(named, key=len)
        return max(candidates, key=lambda name: self.tensors[name].shape[0]) if candidates else None

    @property
    def vocab_rows(self) -> int | None:
        """Rows of the input embedding, else the vocab size config.json declares."""
        if self.embedding_name is not None:
            return self.tensors[self.embedding_name].shape[0]
        return self.facts.vocab_size

    @cached_property
    def weight_dtype(self) -> str | None:
        """The floating dtype that holds most of the weights' bytes, as torch names it."""
        by_bytes: Counter[str] = Counter()
        for entry in self.tensors.values():
            if entry.scale is not None:  # read as its values, bfloat16 like the unquantized releases
                by_bytes["BF16"] += entry.nbytes
            elif entry.dtype in FLOAT_DTYPES:
                by_bytes[entry.dtype] += entry.nbytes
        if not by_bytes:
            return self.facts.dtype
        dominant = by_bytes.most_common(1)[0][0]
        return SAFETENSORS_TO_TORCH_DTYPE.get(dominant, dominant.lower())

    @cached_property
    def total_bytes(self) -> int:
        """Bytes of tensor data stored."""
        return sum(entry.nbytes for entry in self.tensors.values())

    @cached_property
    def parameter_count(self) -> int:
        """Number of stored elements."""
        return sum(entry.numel for entry in self.tensors.values())

    @property
    def downloaded(self) -> bool:
        """False while some weight file of a Hub repository is not in the cache (``models.hub``)."""
        hub = self.source.hub
        return hub is None or not hub.missing({entry.file for entry in self.tensors.values() if entry.hub})

    @property
    def adapter_summary(self) -> str | None:
        """``my-lora: r 8 on 24 tensors`` for a ``model+adapter`` reference, else None."""
        if self.source.adapter is None:
            return None
        changed = [entry.lora for entry in self.tensors.values() if entry.lora is not None]
        ranks = sorted({update.a.shape[0] for update in changed})
        rank = "/".join(map(str, ranks)) or "-"
        return f"{self.source.adapter.name}: r {rank} on {len(changed)} tensors"

    def summary(self) -> dict[str, Any]:
        """The facts the inspect table and ``--json`` show."""
        facts = self.facts
        return {
            "label": self.label,
            "folder": str(self.folder),
            "from_cache": self.source.from_cache,
            "commit": self.source.commit,
            "downloaded": self.downloaded,
            "hub_bytes_read": self.source.hub.fetched if self.source.hub is not None else 0,
            "model_type": facts.model_type,
            "architectures": list(facts.architectures),
            "layers": self.depth,
            "config_layers": facts.num_layers,
            "stacks": dict(self.stack_depths),
            "main_stack": self.block_prefix,
            "hidden_size": facts.hidden_size,
            "attention_heads": facts.num_heads,
            "kv_heads": facts.num_kv_heads,
            "vocab_size": self.vocab_rows,
            "config_vocab_size": facts.vocab_size,
            "tie_word_embeddings": facts.tie_word_embeddings,
            "dtype": self.weight_dtype,
            "quantization": None
            if self.quantization is None
            else {
                "method": self.quantization.method,
                "block": list(self.quantization.block) if self.quantization.block else None,
                "mergeable": self.quantization.readable,
            },
            "max_positions": facts.max_positions,
            "rope_theta": facts.rope_theta,
            "parameters": self.parameter_count,
            "bytes": self.total_bytes,
            "format": self.checkpoint.format,
            "files": len(self.checkpoint.files),
            "tensors": len(self.tensors),
            "adapter": str(self.source.adapter) if self.source.adapter else None,
            "adapter_tensors": sum(1 for entry in self.tensors.values() if entry.lora is not None),
        }


def load_model_info(argument: str, cache_dir: Path | None = None) -> ModelInfo:
    """Inspect the model named by ``argument`` (folder or hub id, optionally ``+`` a LoRA adapter) from headers
    only: a hub id whose weights the cache lacks is read from the Hub by range (``models.hub``)."""
    from tui_merge.models.lora import apply_adapter, read_adapter, resolve_reference

    source = resolve_reference(argument, cache_dir)
    facts = read_config_facts(source.folder)
    checkpoint = read_checkpoint(source.folder) if source.hub is None else read_hub_checkpoint(source.hub)
    quantization = read_quantization(facts.raw, checkpoint.tensors, source.folder / "config.json")
    if quantization is not None and quantization.readable:
        checkpoint = with_block_scales(checkpoint, quantization.block, source.folder)
    if source.adapter is not None:
        checkpoint = apply_adapter(checkpoint, read_adapter(source.adapter), source.label.partition("+")[0])
    layout = family_layout(facts.model_type)
    roles = classify_tensors(checkpoint.tensors, layout)
    return ModelInfo(source=source, facts=facts, checkpoint=checkpoint, roles=roles, quantization=quantization)


def repeated_model(named: list[tuple[str, ModelInfo]]) -> tuple[str, str, Path] | None:
    """The first two entries that are the same model on disk (the same name twice, a second path to the
    same folder, a symlink to it) and that folder; None when every entry is a different model."""
    seen: dict[tuple[Path, Path | None], str] = {}
    for name, info in named:
        key = (info.folder.resolve(), info.source.adapter)  # one base with two adapters is two models
        if key in seen:
            return seen[key], name, key[0]
        seen[key] = name
    return None


def same_model_sentence(first: str, second: str, folder: Path) -> str:
    """Why a repeated model is refused, for every front end alike."""
    said = f"{first} is listed twice" if first == second else f"{first} and {second} are the same model"
    return f"{said} ({folder}); merging a model with itself gives it back: list each model once."


def distinct_labels(models: list[ModelInfo]) -> list[str]:
    """Each model's label, with its parent folder in front where two labels would read the same
    (``run-a/checkpoint-500`` and ``run-b/checkpoint-500``)."""
    return distinct_names([(model.source.argument, model.label, model.source.from_cache) for model in models])


def distinct_names(named: list[tuple[str, str, bool]]) -> list[str]:
    """For (argument, label, is a hub id) triples: each label, with the argument's parent folder in front where
    two labels would read the same; a hub id names itself whole already."""
    counts = Counter(label for _, label, _ in named)
    return [
        f"{Path(argument).expanduser().resolve().parent.name}/{label}" if counts[label] > 1 and not hub else label
        for argument, label, hub in named
    ]
