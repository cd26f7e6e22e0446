"""mergekit's ``modules:`` syntax, read as the ``models:`` merge with filtered parameters that it means.

A mergekit recipe for a model of several parts (a vision-language model, an encoder-decoder) may give each
part its own models and parameters::

    modules:
      text_decoder:
        models: [{model: A, parameters: {weight: 0.7}}, {model: B, parameters: {weight: 0.3}}]
      vision_tower:
        models: [{model: A}, {model: B}]
        parameters: {weight: 0.5}
      multi_modal_projector:
        models: [{model: A}, {model: B}]

The module names are mergekit's, per family (``text_decoder``, ``vision_tower`` or ``vision_model``,
``multi_modal_projector``, t5's ``encoder``, ``decoder`` and ``shared``). Each is matched by its words to a part
of the model as tui-merge finds it: the main stack and the tensors around it, another stack (a vision tower, an
encoder) with its embeddings and norms, the projector. A module's values become filtered conditions, one filter
per group of that part's tensors (a stack's prefix, each row outside the layers), put before the recipe's own
values: precedence is mergekit's (a model entry's value, then its module's, then the global one), and a
gradient inside a module runs over that part's own depth.

What cannot be read this way is refused with a sentence naming the module: a module whose name matches no
part of the model, a part that no module names (the output would lack its tensors), modules that list
different models, and ``slices:`` inside modules unless there is one module (then it is a plain ``slices:``
recipe; layer stacking copies the other parts from the first slice's model).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from tui_merge.config.loading import LoadedConfig, parse_config
from tui_merge.config.parameters import is_conditions
from tui_merge.config.rendering import outside_rows, stack_rows
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo

_PART_WORDS = (
    ("projector", ("projector", "multi_modal", "merger", "connector", "adapter")),
    ("vision tower", ("vision", "visual", "image")),
    ("audio tower", ("audio", "speech")),
    ("encoder", ("encoder",)),
    ("shared", ("shared",)),
    ("main", ("text", "language", "decoder", "lm", "llm")),
)
"""Words of a module name and the part they name, first match wins (``vision_tower``: the vision tower)."""


def model_parts(reference: ModelInfo) -> dict[str, list[str]]:
    """The model's parts, each as the filters that select its tensors: ``main`` (the main stack and what is
    around it), each other stack by its kind (``vision tower``, ``encoder``...), ``projector``, ``shared``."""
    stacks = stack_rows(reference)
    parts: dict[str, list[str]] = {"main": [f"{reference.block_prefix}."] if reference.block_prefix else []}
    roots = {}
    for stack in stacks:
        parts.setdefault(stack.label, []).append(stack.filter)
        root = next((root for root in reference.tower_roots if stack.filter.startswith(root + ".")), None)
        if root is not None:
            roots[root] = stack.label
    for row in outside_rows(reference):
        name = next((name for name in reference.tensors if row.filter in name), row.filter)
        tower = next((label for root, label in roots.items() if name.startswith(root + ".")), None)
        if row.label.startswith("projector"):
            part = "projector"
        elif tower is not None:
            part = tower
        elif name.startswith("shared."):
            part = "shared"
        else:
            part = "main"
        parts.setdefault(part, []).append(row.filter)
    return {part: filters for part, filters in parts.items() if filters}


def part_of_module(module: str, parts: dict[str, list[str]], where: str) -> str:
    """The part a mergekit module name stands for; a sentence naming it when the model has no such part."""
    words = module.lower()
    for part, keys in _PART_WORDS:
        if any(key in words for key in keys):
            if part == "encoder" and part not in parts and "decoder" not in words:
                break
            if part == "shared" and part not in parts:
                return "main"  # its embedding is the main part's where the model shares none
            if part in parts:
                return part
            break
    known = ", ".join(sorted(parts))
    raise BadInputError(
        f"{where}: module {module!r} names no part of this model (it has: {known}); use mergekit's module "
        "names for this family (text_decoder, vision_tower, multi_modal_projector, encoder, decoder)."
    )


def expand_modules(loaded: LoadedConfig, reference: ModelInfo) -> LoadedConfig:
    """``loaded`` with its ``modules:`` turned into ``models:`` (or ``slices:``) and filtered parameters; the
    text stays the recipe's own, so the output's replay config is what the user wrote."""
    from tui_merge.methods.registry import get_method

    data = yaml.safe_load(loaded.text)
    modules: dict[str, dict[str, Any]] = data.pop("modules")
    where = loaded.where(("modules",))
    if len(modules) == 1 and next(iter(modules.values())).get("slices"):
        (only,) = modules.values()
        data["slices"] = only["slices"]
        if only.get("parameters"):
            top = dict(data.get("parameters") or {})
            for key, value in only["parameters"].items():
                top[key] = _ahead_of(value if is_conditions(value) else [{"value": value}], top.get(key))
            data["parameters"] = top
        return _parsed(data, loaded)
    parts = model_parts(reference)
    by_part: dict[str, str] = {}
    part_of: dict[str, str] = {}
    for name, module in modules.items():
        if module.get("slices"):
            raise BadInputError(
                f"{loaded.where(('modules', name, 'slices'))}: layer stacking inside one of several modules is not "
                "supported; write the recipe with top-level slices: (the other parts come whole from the first "
                "slice's model)."
            )
        part = part_of_module(name, parts, where)
        if part in by_part:
            raise BadInputError(f"{where}: modules {by_part[part]!r} and {name!r} both name the {part}; keep one.")
        by_part[part] = name
        part_of[name] = part
    missing = [part for part in parts if part not in by_part]
    if missing:
        raise BadInputError(
            f"{where}: no module names the {missing[0]} ({', '.join(parts[missing[0]][:3])}), whose tensors the "
            "output needs; add a module for it with the models to take it from."
        )
    listed = {name: [entry["model"] for entry in module.get("models") or []] for name, module in modules.items()}
    first_name, first_models = next(iter(listed.items()))
    for name, models in listed.items():
        if sorted(models) != sorted(first_models):
            raise BadInputError(
                f"{loaded.where(('modules', name, 'models'))}: module {name!r} lists other models than "
                f"{first_name!r}; tui-merge merges every part from the same models, so list the same ones in each "
                "module (a part that should come from one model gives the others weight 0)."
            )
    method = get_method(data["merge_method"])
    scopes = {spec.name: spec.scope for spec in method.params} if method else {}
    top = dict(data.get("parameters") or {})
    per_model: dict[str, dict[str, list[dict[str, Any]]]] = {model: {} for model in first_models}
    top_conditions: dict[str, list[dict[str, Any]]] = {}
    for name, module in modules.items():
        filters = parts[part_of[name]]
        for key, value in (module.get("parameters") or {}).items():
            if scopes.get(key) == "model":
                for model in first_models:
                    per_model[model].setdefault(key, []).extend({"filter": f, "value": value} for f in filters)
            else:
                top_conditions.setdefault(key, []).extend({"filter": f, "value": value} for f in filters)
        for entry in module.get("models") or []:
            for key, value in (entry.get("parameters") or {}).items():
                conditions = per_model[entry["model"]].setdefault(key, [])
                # A model entry's own value outranks its module's: it goes before the module's conditions.
                conditions[:0] = [{"filter": f, "value": value} for f in filters]
    for key, conditions in top_conditions.items():
        top[key] = _ahead_of(conditions, top.get(key))
    if top:
        data["parameters"] = top
    first_module = modules[first_name]
    data["models"] = []
    for entry in first_module.get("models") or []:
        model_entry: dict[str, Any] = {"model": entry["model"]}
        if per_model[entry["model"]]:
            model_entry["parameters"] = per_model[entry["model"]]
        data["models"].append(model_entry)
    return _parsed(data, loaded)


def _ahead_of(conditions: list[dict[str, Any]], rest: Any) -> list[dict[str, Any]]:
    """``conditions`` first (first match wins), then ``rest``: its own conditions, or its value as the catch-all."""
    if rest is None:
        return conditions
    return [*conditions, *(rest if is_conditions(rest) else [{"value": rest}])]


def _parsed(data: dict[str, Any], loaded: LoadedConfig) -> LoadedConfig:
    expanded = parse_config(yaml.safe_dump(data, sort_keys=False), f"{loaded.source} (its modules: read as models:)")
    return dataclasses.replace(expanded, text=loaded.text, source=loaded.source, lines=loaded.lines)
