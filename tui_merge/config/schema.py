"""The merge config: mergekit's YAML dialect plus one optional ``tui_merge:`` block of our own.

A config without ``tui_merge:`` is a plain mergekit recipe, and ``tui-merge
export --mergekit`` strips the block again. Parameter values stay raw here
(scalars, gradient lists, filter lists); which names a method accepts and in
which ranges is checked against the method registry in ``validation``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

DTYPE_ALIASES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}  # fmt: skip
"""Dtype names a config may use, and the canonical name each stands for."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(text: str | int) -> int:
    """``2GB`` -> 2_000_000_000, ``2000MiB`` -> 2_097_152_000, ``123`` -> 123 bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size; write it like 5GB, 2000MiB or a number of bytes")
    number, unit = float(match[1]), (match[2] or "").lower()
    scale = 1024 ** "bkmgt".index(unit[0]) if "i" in unit else _UNITS[unit[:1]]
    return int(number * scale)


def _model_reference(value: Any) -> Any:
    """mergekit's long form of a model, ``{model: {path: org/a, revision: v1}, lora: {path: ...}}`` (or the
    inner ``{path, revision}`` alone), as the short text it stands for: ``org/a@v1+lora``."""

    def path(part: Any) -> Any:
        if isinstance(part, dict) and set(part) <= {"path", "revision"} and isinstance(part.get("path"), str):
            return f"{part['path']}@{part['revision']}" if part.get("revision") else part["path"]
        return part

    if isinstance(value, dict) and "model" in value and set(value) <= {"model", "lora"}:
        model, lora = path(value["model"]), path(value.get("lora"))
        if isinstance(model, str) and (lora is None or isinstance(lora, str)):
            return f"{model}+{lora}" if lora else model
    return path(value)


ModelName = Annotated[str, BeforeValidator(_model_reference)]
"""A model as a recipe names it: a folder, ``org/name[@revision]``, optionally ``+adapter``; mergekit's long
form (``{model: {path: ..., revision: ...}}``) is read as the same text."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ModelEntry(_Strict):
    """One entry of ``models:``."""

    model: ModelName
    parameters: dict[str, Any] = Field(default_factory=dict)


class SliceSource(_Strict):
    """One model's layers within an output slice."""

    model: ModelName
    layer_range: tuple[int, int]
    """Half-open: ``[0, 16]`` is layers 0 to 15."""
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("layer_range")
    @classmethod
    def _ordered(cls, value: tuple[int, int]) -> tuple[int, int]:
        start, end = value
        if start < 0 or end <= start:
            raise ValueError(f"layer_range must be [start, end) with 0 <= start < end, got [{start}, {end}]")
        return value

    @property
    def length(self) -> int:
        """Number of layers in the range."""
        return self.layer_range[1] - self.layer_range[0]


class OutputSlice(_Strict):
    """One slice of the output's layers, merged from its sources."""

    sources: list[SliceSource] = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _same_length(self) -> OutputSlice:
        lengths = {source.length for source in self.sources}
        if len(lengths) > 1:
            raise ValueError(f"every source of a slice needs the same number of layers, got {sorted(lengths)}")
        return self

    @property
    def length(self) -> int:
        """Number of output layers the slice produces."""
        return self.sources[0].length


class TuiMergeOptions(_Strict):
    """Our options, under ``tui_merge:``; mergekit ignores the whole block."""

    vocab: Literal["truncate", "pad", "union"] | None = None
    """How to reconcile vocabularies of different sizes."""
    shard_size: str | int = "5GB"
    """Largest output shard, e.g. ``5GB`` or ``2000MiB``."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    seed: int = 0
    """Seed of the random methods; the same seed replays the same bytes."""
    copy_tokenizer: bool = True
    """Copy tokenizer files into the output."""
    embeddings_from: str | None = None
    """A ``slices:`` passthrough takes the tensors before the layers (embeddings) from this model instead of
    the first slice's (bakllama's ``embedding_source``)."""
    head_from: str | None = None
    """... and the tensors after the layers (final norm, head) from this model instead of the last slice's
    (bakllama's ``lm_head_source``)."""
    quantize: Literal["fp8"] | None = None
    """``fp8``: the merged weights that came from block-scaled FP8 inputs are quantized again with the inputs'
    block size, their config keeps its quantization_config; by default they are written in the output dtype."""

    @field_validator("shard_size")
    @classmethod
    def _size(cls, value: str | int) -> str | int:
        if parse_size(value) <= 0:
            raise ValueError("shard_size must be larger than 0")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int) -> int:
        if not 0 <= value < 2**64:
            raise ValueError(f"seed must be a whole number from 0 to 2**64-1, got {value}")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @property
    def shard_bytes(self) -> int:
        """``shard_size`` in bytes."""
        return parse_size(self.shard_size)


class ZeroToken(_Strict):
    """``{kind: zero}``: the token's row is zeros."""

    kind: Literal["zero"]


class ModelToken(_Strict):
    """``{kind: model_token, model: M, token: T}`` (or ``token_id: N``): the row of another token of model M."""

    kind: Literal["model_token"]
    model: str
    token: str | None = None
    token_id: int | None = None

    @model_validator(mode="after")
    def _one_token(self) -> ModelToken:
        if (self.token is None) == (self.token_id is None):
            raise ValueError("give exactly one of token and token_id")
        if self.token_id is not None and self.token_id < 0:
            raise ValueError(f"token_id must be 0 or more, got {self.token_id}")
        return self


class TokenSettings(_Strict):
    """Where one output token's embedding and head rows come from (mergekit's ``tokenizer.tokens``)."""

    source: str | ZeroToken | ModelToken | None = None
    """A model (its own row of this token), ``{kind: zero}``, or ``{kind: model_token, ...}``; None: the default."""
    force: bool = False
    """Use ``source`` for every model, even those that have the token (else only for those that lack it)."""

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        kinds = {"zero": ZeroToken, "model_token": ModelToken}
        if value.get("kind") not in kinds:
            raise ValueError(
                "source must be a model, {kind: zero} or {kind: model_token, model: M, token: T (or token_id: N)}, "
                f"got kind {value.get('kind')!r}"
            )
        try:
            return kinds[value["kind"]].model_validate(value)
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


class TokenizerSettings(_Strict):
    """mergekit's ``tokenizer:`` block: the output tokenizer and per-token rows; rows always match by token."""

    source: str = "union"
    """``union``, ``base`` or a model (path or hub id)."""
    tokens: dict[str, TokenSettings] | None = None
    pad_to_multiple_of: int | None = None
    """Round the output's vocabulary rows up to a multiple of this (rows past the tokenizer: each model's mean)."""

    @field_validator("pad_to_multiple_of")
    @classmethod
    def _multiple(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= 1 << 20:
            raise ValueError(f"pad_to_multiple_of must be a whole number from 1 to 1048576, got {value}")
        return value


class OutputModule(_Strict):
    """One entry of mergekit's ``modules:``: a part of the model (``text_decoder``, ``vision_tower``) with its
    own models or slices and parameters (``config/modules.py`` reads it)."""

    models: list[ModelEntry] | None = None
    slices: list[OutputSlice] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _models_or_slices(self) -> OutputModule:
        if (not self.models) == (not self.slices):
            raise ValueError("a module gives either models or slices (exactly one of them)")
        return self


class MergeConfig(_Strict):
    """A whole merge recipe."""

    merge_method: str
    base_model: ModelName | None = None
    models: list[ModelEntry] | None = None
    slices: list[OutputSlice] | None = None
    modules: dict[str, OutputModule] | None = None
    """mergekit's per-part recipe; read as ``models:`` with filtered parameters once the models are known."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    input_model_parameters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """mergekit 0.0.2's per-model parameters, by model: below a ``models:`` entry's own and a slice's, above
    the global ones (``tui-merge export`` writes them into the entries)."""
    dtype: str | None = None
    """mergekit's working dtype; here it is the output dtype unless out_dtype is set (math runs in float32)."""
    out_dtype: str | None = None
    tokenizer_source: str | None = None
    """``base``, ``union``, a model (path or hub id, as mergekit takes it) or ``model:<path>``; default: the base
    model's (else the first model's) tokenizer."""
    tokenizer: TokenizerSettings | None = None
    """mergekit's ``tokenizer:`` block (instead of ``tokenizer_source``)."""
    chat_template: str | None = None
    """A template name (``chatml``...), ``auto`` or a Jinja template, written into the output tokenizer."""
    tui_merge: TuiMergeOptions = Field(default_factory=TuiMergeOptions)

    @field_validator("dtype", "out_dtype")
    @classmethod
    def _dtype(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in DTYPE_ALIASES:
            raise ValueError(f"unknown dtype {value!r}; use float32, float16 or bfloat16")
        return DTYPE_ALIASES[value]

    @model_validator(mode="after")
    def _models_or_slices(self) -> MergeConfig:
        if sum(part is not None for part in (self.models, self.slices, self.modules)) != 1:
            raise ValueError("give either models, slices or modules (exactly one of them)")
        if self.modules is not None and not self.modules:
            raise ValueError("modules is empty; name at least one module")
        if self.models is not None and not self.models:
            raise ValueError("models is empty; list at least one model")
        if self.slices is not None and not self.slices:
            raise ValueError("slices is empty; list at least one slice")
        outside = self.tui_merge.embeddings_from or self.tui_merge.head_from
        if outside and (self.slices is None or self.merge_method != "passthrough"):
            raise ValueError(
                "tui_merge.embeddings_from and head_from take the outside tensors of a passthrough "
                "slices: config from one model; use them with merge_method: passthrough and slices"
            )
        if self.tokenizer is not None and self.tokenizer_source is not None:
            raise ValueError("give tokenizer_source or a tokenizer: block, not both (tokenizer: {source: ...})")
        return self

    @property
    def tokenizer_choice(self) -> str | None:
        """The output tokenizer as asked for: ``base``, ``union``, ``model:<name>``, or None (the default).

        ``tokenizer_source`` and ``tokenizer.source`` may name a model bare, as
        mergekit takes them (``tokenizer_source: ./some-model``); it is spelled
        ``model:<name>`` here either way.
        """
        source = self.tokenizer.source if self.tokenizer is not None else self.tokenizer_source
        if source is None or source in ("base", "union") or source.startswith("model:"):
            return source
        return f"model:{source}"

    def model_parameters(self, model: str) -> dict[str, Any]:
        """The ``input_model_parameters`` of ``model`` (empty when it has none)."""
        return self.input_model_parameters.get(model, {})

    def referenced_models(self) -> list[str]:
        """Every model the config names, base first, each once, in order of appearance."""
        names = [self.base_model] if self.base_model else []
        for entry in self.models or []:
            names.append(entry.model)
        for output_slice in self.slices or []:
            names.extend(source.model for source in output_slice.sources)
        for module in (self.modules or {}).values():
            names.extend(entry.model for entry in module.models or [])
            for output_slice in module.slices or []:
                names.extend(source.model for source in output_slice.sources)
        names += [name for name in (self.tui_merge.embeddings_from, self.tui_merge.head_from) if name]
        return list(dict.fromkeys(names))

    @property
    def output_dtype(self) -> str | None:
        """The dtype to write: out_dtype, else dtype, else (None) the base model's."""
        return self.out_dtype or self.dtype
