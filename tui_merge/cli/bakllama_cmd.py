"""``tui-merge bakllama CONFIG OUT``: bakllama's layer-recombination config, as a passthrough config.

bakllama's file::

    layer_slices:
      - {model: ./base, start: 0, end: 16}
      - {model: ./chat, start: 8, end: 24, scale: 0.9}
    embedding_source: ./base
    lm_head_source: ./chat

Layers are stacked in order from each slice's half-open range ``[start,
end)``; ``scale`` multiplies that slice's MLP down-projections (a
``scale`` parameter filtered on ``down_proj``, as mergekit's bakllama wrapper
writes it); the embeddings come from ``embedding_source`` (default: the
first slice's model) and the final norm and head from ``lm_head_source``
(default: the last slice's model), through ``tui_merge: {embeddings_from,
head_from}`` when they are not those defaults. ``--fp16`` writes float16.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from tui_merge.cli.generated import run_generated
from tui_merge.config.loading import load_yaml
from tui_merge.config.rendering import scalar
from tui_merge.errors import BadInputError


class _LayerSlice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    start: int
    end: int
    scale: float | None = None


class _BakllamaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    layer_slices: list[_LayerSlice]
    embedding_source: str | None = None
    lm_head_source: str | None = None


def run(args: argparse.Namespace) -> int:
    """Translate the bakllama file, then print the config or merge."""
    text = bakllama_config(Path(args.config), fp16=args.fp16)
    return run_generated(
        text, f"{args.config} (bakllama)", args.output, print_yaml=args.print_yaml, force=args.force,
        resume=args.resume, allow_crimes=args.allow_crimes, argv=args.argv,
    )  # fmt: skip


def bakllama_config(path: Path, *, fp16: bool = False) -> str:
    """The passthrough config a bakllama file describes."""
    settings = _read(path)
    lines = ["# from tui-merge bakllama (a bakllama layer_slices file)", "merge_method: passthrough", "slices:"]
    for piece in settings.layer_slices:
        lines.append(f"  - sources:\n      - model: {scalar(piece.model)}\n"
                     f"        layer_range: [{piece.start}, {piece.end}]")  # fmt: skip
        if piece.scale is not None:
            lines.append("        parameters:\n          scale:\n            - filter: down_proj\n"
                         f"              value: {scalar(piece.scale)}")  # fmt: skip
    if fp16:
        lines.append("dtype: float16")
    first, last = settings.layer_slices[0].model, settings.layer_slices[-1].model
    outside = {"embeddings_from": settings.embedding_source, "head_from": settings.lm_head_source}
    defaults = {"embeddings_from": first, "head_from": last}
    chosen = {key: value for key, value in outside.items() if value is not None and value != defaults[key]}
    if chosen:
        lines.append("tui_merge:")
        lines += [f"  {key}: {scalar(value)}" for key, value in chosen.items()]
    return "\n".join(lines) + "\n"


def _read(path: Path) -> _BakllamaConfig:
    data: Any = load_yaml(path, "bakllama config")
    try:
        settings = _BakllamaConfig.model_validate(data)
    except ValidationError as error:
        errors = error.errors()
        first = next((item for item in errors if item["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(part) for part in first["loc"])
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise BadInputError(f"{path}: {where}: {problem} (a bakllama file has layer_slices of "
                            "{model, start, end, scale}, embedding_source and lm_head_source).") from None  # fmt: skip
    if not settings.layer_slices:
        raise BadInputError(f"{path}: layer_slices is empty; list at least one {{model, start, end}}.")
    for index, piece in enumerate(settings.layer_slices):
        if not 0 <= piece.start < piece.end:
            raise BadInputError(
                f"{path}: layer_slices.{index}: start {piece.start} and end {piece.end} must satisfy "
                "0 <= start < end (the range is half-open)."
            )
    return settings
