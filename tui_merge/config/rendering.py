"""Write a merge config as commented YAML text: used by ``tui-merge template`` and the wizard.

Per-layer values become a conditions list: one ``{filter, value}`` row per
tensor group outside the layers, then a catch-all whose value is a gradient
with one anchor per layer, so anchor i is exactly layer i's value. Each value
sits on its own line with the layer in a comment, ready to edit by hand.

A model of several stacks (a vision tower beside the language model, t5's
encoder beside its decoder) gets a filtered gradient per stack beside the
main one, one anchor per layer of that stack, written before the catch-all:
a gradient runs over each stack's own depth, so anchor i is that stack's
layer i. The catch-all covers the main stack's layers.

A value split by component (the classic slerp recipe's separate attention and
MLP curves) adds a filtered gradient per component between the outside rows
and the catch-all, which then covers the rest of each layer (its norms). The
split applies to the main stack; the other stacks keep one value a layer.

The layout and its comments are written here line by line, but every scalar
(a model path, a filter, an option) is emitted by PyYAML, so a folder named
``yes``, ``null``, ``.5`` or ``#x`` reads back as the same text, not as a
bool, None, a number or a comment. Strings that YAML 1.2 readers would take
for numbers (``1e3``) are quoted as well, so other tools read them alike.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from tui_merge.models.info import ModelInfo
    from tui_merge.models.layout import TensorRole

_COMPONENT_LABELS = {"embed": "embeddings", "norm": "final norm", "head": "output head", "other": "other"}


@dataclass(frozen=True)
class OutsideRow:
    """A group of tensors outside the layers, selected by a filter."""

    filter: str
    label: str
    """What it is, e.g. ``embeddings``; written as a comment."""
    component: str = ""
    """The role of its tensors: ``embed``, ``norm``, ``head`` or ``other``."""


@dataclass(frozen=True)
class StackRow:
    """A stack of layers beside the main one (a vision tower's ``visual.blocks``), selected by a filter."""

    filter: str
    """The stack's prefix and a dot: ``visual.blocks.``."""
    label: str
    """What it is, e.g. ``vision tower``; its layers are labelled ``vision tower 0``..."""
    depth: int


@dataclass(frozen=True)
class ComponentFilter:
    """A filter that selects one component (attention or MLP) in every layer and nothing else there."""

    part: str
    """``attn`` or ``mlp``."""
    filter: str
    label: str


@dataclass
class PerLayer:
    """A parameter that varies along the layers: one value per outside row, one per layer.

    ``parts`` holds per-layer values for components split out of the layers;
    ``layers`` then covers what is left of each layer.
    """

    outside: list[tuple[OutsideRow, float]]
    layers: list[float]
    parts: list[tuple[ComponentFilter, list[float]]] = field(default_factory=list)
    stacks: list[tuple[StackRow, list[float]]] = field(default_factory=list)
    """One value per layer of each stack beside the main one."""


@dataclass
class RecipeModel:
    """One entry of ``models:`` and its parameters (numbers, switches or PerLayer values)."""

    name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recipe:
    """Everything a rendered config says."""

    method: str
    models: list[RecipeModel]
    base: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    dtype: str | None = None
    tokenizer_source: str | None = None
    chat_template: str | None = None
    tui_merge: dict[str, Any] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    """Lines written as ``#`` comments at the top."""
    notes: dict[str, str] = field(default_factory=dict)
    """Comment after a global parameter, by name."""


def render_recipe(recipe: Recipe) -> str:
    """The recipe as YAML text in mergekit's dialect."""
    lines = [f"# {comment}" for comment in recipe.comments]
    lines.append(f"merge_method: {recipe.method}")
    if recipe.base:
        lines.append(f"base_model: {scalar(recipe.base)}")
    lines.append("models:")
    for model in recipe.models:
        lines.append(f"  - model: {scalar(model.name)}")
        if model.parameters:
            lines.append("    parameters:")
            for name, value in model.parameters.items():
                lines += _parameter(name, value, indent=6)
    if recipe.parameters:
        lines.append("parameters:")
        for name, value in recipe.parameters.items():
            rendered = _parameter(name, value, indent=2)
            if name in recipe.notes and len(rendered) == 1:
                rendered[0] += f"  # {recipe.notes[name]}"
            lines += rendered
    if recipe.dtype:
        lines.append(f"dtype: {scalar(recipe.dtype)}")
    if recipe.tokenizer_source:
        lines.append(f"tokenizer_source: {scalar(recipe.tokenizer_source)}")
    if recipe.chat_template:
        lines.append(f"chat_template: {scalar(recipe.chat_template)}")
    if recipe.tui_merge:
        lines.append("tui_merge:")
        lines += [f"  {key}: {scalar(value)}" for key, value in recipe.tui_merge.items()]
    return "\n".join(lines) + "\n"


def _parameter(name: str, value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if not isinstance(value, PerLayer):
        return [f"{pad}{name}: {scalar(value)}"]
    lines = [f"{pad}{name}:"]
    for row, row_value in value.outside:
        lines += [f"{pad}  - filter: {scalar(row.filter)}  # {row.label}", f"{pad}    value: {number(row_value)}"]
    for stack, layers in value.stacks:
        lines.append(f"{pad}  - filter: {scalar(stack.filter)}  # {stack.label} layers")
        lines += _gradient(pad + "    ", layers, f"{stack.label} ")
    for part, layers in value.parts:
        lines.append(f"{pad}  - filter: {scalar(part.filter)}  # {part.label}")
        lines += _gradient(pad + "    ", layers)
    lines.append(f"{pad}  - value:  # {'rest of the layers' if value.parts else 'layers'}")
    lines += [f"{pad}      - {number(layer_value)}  # layer {index}" for index, layer_value in enumerate(value.layers)]
    return lines


def _gradient(pad: str, layers: list[float], label: str = "layer ") -> list[str]:
    return [f"{pad}value:"] + [f"{pad}  - {number(value)}  # {label}{index}" for index, value in enumerate(layers)]


_YAML12_NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+")
"""Plain text that YAML 1.2 reads as a number but PyYAML's YAML 1.1 rules leave a string (``1e3``, ``0o17``)."""


def scalar(value: Any) -> str:
    """One YAML scalar on one line that reads back as ``value``: numbers as ``number`` writes them, text via PyYAML."""
    if isinstance(value, (bool, int)) or (isinstance(value, float) and math.isfinite(value)):
        return number(value)
    # Double quotes escape line breaks and control characters, keeping the value on its line.
    style = '"' if isinstance(value, str) and not value.isprintable() else None
    text = _dump(value, style)
    if isinstance(value, str) and _YAML12_NUMBER.fullmatch(text):
        text = _dump(value, "'")
    return text


def _dump(value: Any, style: str | None) -> str:
    text = yaml.safe_dump(value, default_style=style, allow_unicode=True, width=math.inf)
    return text.removesuffix("\n...\n").removesuffix("\n")


def number(value: float) -> str:
    """Two to four decimals for ordinary values; exponent form with a dot (YAML 1.1 needs it) for tiny ones."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value == 0 or 0.01 <= abs(value) < 1000:
        text = f"{value:.4f}".rstrip("0")
        return text if len(text.split(".")[1]) >= 2 else f"{value:.2f}"
    mantissa, _, exponent = f"{value:g}".partition("e")
    return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else f"{value:g}"


def outside_rows(reference: ModelInfo) -> list[OutsideRow]:
    """One row per module outside the layers, with a filter that matches no other tensor's name.

    Integer buffers (BERT's ``position_ids``) get no row: they are copied from
    the base, never merged. A module whose name is the start of another
    module's (``cls.predictions`` and ``cls.predictions.transform.dense``) is
    selected by its full tensor name, since the first matching filter wins.
    """
    from tui_merge.models.safetensors_header import FLOAT_DTYPES

    layer_names = [name for name, role in reference.roles.items() if role.layer is not None]
    outside = [
        name
        for name, role in reference.roles.items()
        if role.layer is None and reference.tensors[name].dtype in FLOAT_DTYPES
    ]

    def module_of(name: str) -> str:
        module = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
        # The numbered children of an ``nn.Sequential`` outside the layers are one module (a projector's MLP).
        return re.sub(r"\.\d+$", "", module)

    def clashes(text: str, module: str) -> bool:
        others = [name for name in outside if module_of(name) != module]
        return any(text in name for name in [*layer_names, *others])

    rows: list[OutsideRow] = []
    for name in outside:
        role = reference.roles[name]
        module = module_of(name)
        candidate = next((text for text in (module, name) if not clashes(text, module)), None)
        row = OutsideRow(candidate or "", outside_label(module, role.component, outside), role.component)
        if candidate is not None and row not in rows:
            rows.append(row)
    return rows


def stack_rows(reference: ModelInfo) -> list[StackRow]:
    """One row per stack beside the main one, labelled from its prefix (``vision tower``, ``encoder``), with a
    filter that matches that stack's layers and no other tensor. A stack whose prefix another name shares is
    left out: its layers then take the main stack's curve, over their own depth."""
    names = list(reference.roles)
    rows: list[StackRow] = []
    for prefix, depth in reference.stack_depths.items():
        if prefix == reference.block_prefix:
            continue
        text = prefix + "."
        if any(text in name and reference.roles[name].block_prefix != prefix for name in names):
            continue
        rows.append(StackRow(text, _stack_kind(prefix), depth))
    kinds = [row.label for row in rows]
    return [
        StackRow(row.filter, f"{row.label} {row.filter.rstrip('.').rsplit('.', 1)[-1]}", row.depth)
        if kinds.count(row.label) > 1
        else row
        for row in rows
    ]


def _stack_kind(prefix: str) -> str:
    lowered = prefix.lower()
    tower = _tower_kind(lowered)
    if tower:
        return f"{tower} tower"
    for kind in ("encoder", "decoder"):
        if kind in lowered.split("."):
            return kind
    return prefix


_POSITION = re.compile(r"position|(^|\.)(wpe|embed_positions)(\.|$)")
"""Position tables: ``position_embeddings``, gpt2's ``wpe``, bart's ``embed_positions``."""


_TOWER = re.compile(r"(vision|visual|audio|speech)")
"""A tower beside the language model, named by its prefix: its rows say so (``vision tower final norm``)."""


def outside_label(module: str, component: str, outside: list[str]) -> str:
    """What a module outside the layers is, from its name: ``position embeddings``, ``embedding norm``,
    ``pooler``, ``head transform``, ``projector``, ``vision tower patch embeddings``... (``embeddings`` alone
    when a model has one embedding table)."""
    lowered = module.lower()
    if re.search(r"projector|multi_modal|(^|\.)merger(\.|$)", lowered):  # qwen-vl's patch merger projects too
        return "projector norm" if component == "norm" else "projector"
    kind = _tower_kind(lowered.split(".")[0])
    if kind:
        return f"{kind} tower " + _plain_label(lowered, component, outside).removeprefix("word ")
    return _plain_label(lowered, component, outside)


def _tower_kind(text: str) -> str | None:
    """``vision`` or ``audio`` when ``text`` names a tower beside the language model, else None."""
    tower = _TOWER.search(text)
    return None if tower is None else "vision" if tower[1] in ("vision", "visual") else "audio"


def _plain_label(lowered: str, component: str, outside: list[str]) -> str:
    if "patch" in lowered and component in ("embed", "other"):
        return "patch embeddings"
    if "class_embedding" in lowered:
        return "class embedding"
    if _POSITION.search(lowered) and component in ("embed", "other"):
        return "position embeddings"
    if "token_type" in lowered:
        return "token-type embeddings"
    if "pooler" in lowered:
        return "pooler"
    if component == "norm" and ("embed" in lowered or re.search(r"(^|\.)pre_?lay", lowered)):
        return "embedding norm"  # CLIP's pre_layrnorm normalises the embeddings before the first layer
    if re.search(r"(^|\.)transform(\.|$)", lowered):  # bert's cls.predictions.transform, not gpt2's transformer.
        return "head transform norm" if component == "norm" or "norm" in lowered else "head transform"
    if component == "embed" and any(_POSITION.search(name) or "token_type" in name for name in outside):
        return "word embeddings"
    return _COMPONENT_LABELS.get(component, component)


_PART_LABELS = {"attn": "attention", "mlp": "MLP"}


def component_filters(reference: ModelInfo) -> list[ComponentFilter]:
    """Filters for the attention and the MLP of every layer, or [] when the names allow no such split.

    A filter is the name segment right after the layer index that all of a
    component's tensors share (``self_attn``, ``mlp``), written with its dots
    (``.attention.``) when the bare word also occurs in another tensor's name
    (``post_attention_layernorm``): a filter must match nothing else inside
    the layers, or the split would leak. The layers of a stack with a row of its
    own (``stack_rows``: its filter comes first) are not split and not counted.
    """
    own_rows = {row.filter for row in stack_rows(reference)}
    layer_names = {
        name: role
        for name, role in reference.roles.items()
        if role.layer is not None and f"{role.block_prefix}." not in own_rows
    }
    filters = []
    for part in ("attn", "mlp"):
        members = [name for name, role in layer_names.items() if role.component == part]
        segments = {_segment_after_index(name, layer_names[name].block_prefix) for name in members}
        if not members or len(segments) != 1:
            return []
        segment = segments.pop()
        others = [name for name, role in layer_names.items() if role.component != part]
        # The bare segment is what published recipes write; dotted, it cannot leak into a longer name.
        candidate = next((text for text in (segment, f".{segment}.") if not any(text in name for name in others)), None)
        if candidate is None:
            return []
        filters.append(ComponentFilter(part, candidate, _PART_LABELS[part]))
    return [filters[0], *_expert_filters(layer_names), filters[1]]


_ROUTER = re.compile(r"(?P<filter>\.[^.]+\.(gate|router)\.)(weight|bias|e_score_correction_bias)$")
"""A mixture of experts' router: ``mlp.gate.weight``, mixtral's ``block_sparse_moe.gate.weight``, gpt_oss's
``mlp.router.bias``, deepseek's ``mlp.gate.e_score_correction_bias``."""


def _expert_filters(layer_names: dict[str, TensorRole]) -> list[ComponentFilter]:
    """A mixture of experts' router and shared experts as parts of their own, written before the MLP's filter
    (first match wins) so their values are their own: ``mlp.gate.`` and ``shared_expert`` (qwen2_moe's
    ``shared_expert`` and ``shared_expert_gate``, deepseek's ``shared_experts``). Each only where its filter
    matches nothing else inside the layers."""
    filters = []
    routers = {match["filter"] for name in layer_names if (match := _ROUTER.search(name))}
    if len(routers) == 1:
        text = routers.pop()
        if all(_ROUTER.search(name) for name in layer_names if text in name):
            filters.append(ComponentFilter("router", text.lstrip("."), "router"))
    if any("shared_expert" in name for name in layer_names):
        filters.append(ComponentFilter("shared", "shared_expert", "shared experts"))
    return filters


def _segment_after_index(name: str, block_prefix: str | None) -> str:
    rest = name[len(block_prefix) + 1 :] if block_prefix and name.startswith(block_prefix + ".") else name
    return rest.split(".")[1] if rest.count(".") >= 2 else rest
