"""Check a config against its method: names, scopes, types and ranges of every parameter.

mergekit silently ignores parameters a method does not take, which hides
typos (``desnity: 0.5`` merges at density 1). Here an unknown name is an error
that suggests the nearest valid one, and every number, including each anchor
of a gradient and each filtered value, is checked against its range.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tui_merge.config.located import KeyPath, LoadedConfig, format_path, sentence_end
from tui_merge.config.parameters import is_conditions, is_gradient
from tui_merge.errors import BadInputError, suggestion
from tui_merge.methods.registry import get_method
from tui_merge.methods.spec import MethodSpec, ParamSpec

MAX_ANCHORS = 10_000
"""Gradient anchors a parameter may list: more than any model has layers."""


def validate_parameters(loaded: LoadedConfig) -> None:
    """Raise BadInputError, naming file, line and key, for the first problem found."""
    config = loaded.config
    try:
        method = get_method(config.merge_method)
    except BadInputError as error:
        raise BadInputError(f"{loaded.source}:{loaded.line_of(('merge_method',))}: {error.message}") from None
    for path, parameters, per_model_level in _parameter_levels(loaded):
        for name, value in parameters.items():
            spec = method.param(name)
            where = loaded.where((*path, name))
            if spec is None:
                hint = suggestion(name, [param.name for param in method.params]) if method.params else ""
                raise BadInputError(
                    f"{where}: {method.name} has no parameter {name!r}{sentence_end(hint) if hint else '.'}"
                )
            if per_model_level and spec.scope == "global":
                raise BadInputError(
                    f"{where}: {name} is a global parameter of {method.name}; "
                    "put it in the top-level parameters (or a slice's)."
                )
            _check_value(loaded, (*path, name), spec, value)
    _check_required(loaded, method)
    _check_models(loaded, method)
    _check_weights(loaded, method)
    _check_tokenizer_source(loaded)


def _parameter_levels(loaded: LoadedConfig) -> Iterator[tuple[KeyPath, dict[str, Any], bool]]:
    config = loaded.config
    yield ("parameters",), config.parameters, False
    for index, entry in enumerate(config.models or []):
        yield ("models", index, "parameters"), entry.parameters, True
    for model, parameters in config.input_model_parameters.items():
        if model not in config.referenced_models():
            listed = ", ".join(config.referenced_models())
            raise BadInputError(
                f"{loaded.where(('input_model_parameters', model))}: {model} is not one of the config's models "
                f"({listed}); name one of them."
            )
        yield ("input_model_parameters", model), parameters, True
    for index, output_slice in enumerate(config.slices or []):
        yield ("slices", index, "parameters"), output_slice.parameters, False
        for source_index, source in enumerate(output_slice.sources):
            yield ("slices", index, "sources", source_index, "parameters"), source.parameters, True


def _check_value(loaded: LoadedConfig, path: KeyPath, spec: ParamSpec, value: Any) -> None:
    if spec.varies_by_tensor and is_conditions(value):
        for index, condition in enumerate(value):
            extra = set(condition) - {"filter", "value"}
            if extra or "value" not in condition:
                raise BadInputError(
                    f"{loaded.where((*path, index))}: a condition is {{filter: text, value: number}}, "
                    f"got keys {sorted(condition)}."
                )
            if condition.get("filter") is not None and not isinstance(condition["filter"], str):
                raise BadInputError(f"{loaded.where((*path, index, 'filter'))}: filter must be text.")
            if is_conditions(condition["value"]):
                raise BadInputError(f"{loaded.where((*path, index, 'value'))}: conditions cannot be nested.")
            _check_value(loaded, (*path, index, "value"), spec, condition["value"])
        return
    if spec.varies_by_tensor and is_gradient(value):
        if len(value) > MAX_ANCHORS:
            raise BadInputError(
                f"{loaded.where(path)} has {len(value)} gradient anchors; more than {MAX_ANCHORS} is refused "
                "(one per layer is the most that means anything)."
            )
        for index, anchor in enumerate(value):
            _check_scalar(loaded, (*path, index), spec, anchor)
        return
    _check_scalar(loaded, path, spec, value)


def _check_scalar(loaded: LoadedConfig, path: KeyPath, spec: ParamSpec, value: Any) -> None:
    problem = spec.problem(value)
    if problem is None:
        return
    if spec.kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        problem = f"must be a number, a list of numbers (gradient) or filter conditions, got {value!r}"
    raise BadInputError(f"{loaded.where(path)} {problem}.")


def _check_required(loaded: LoadedConfig, method: MethodSpec) -> None:
    config = loaded.config
    for spec in method.params:
        if not spec.required:
            continue
        if spec.name in config.parameters:
            continue
        if config.slices and all(spec.name in output_slice.parameters for output_slice in config.slices):
            continue
        if spec.scope == "model" and _every_model_sets(config, spec.name):
            continue
        raise BadInputError(
            f"{loaded.source}:{loaded.line_of(('parameters',))}: {method.name} needs parameter {spec.name} "
            f"({spec.help}; {spec.range_text()}); add it under parameters."
        )


def _every_model_sets(config: Any, name: str) -> bool:
    entries = config.models or [source for output_slice in config.slices for source in output_slice.sources]
    return all(
        name in entry.parameters or name in config.model_parameters(entry.model)
        for entry in entries
        if entry.model != config.base_model
    )


def _check_models(loaded: LoadedConfig, method: MethodSpec) -> None:
    config = loaded.config
    if method.base == "required" and not config.base_model:
        raise BadInputError(
            f"{loaded.source}:{loaded.line_of(('merge_method',))}: {method.name} merges task vectors against a "
            "base model; set base_model."
        )
    groups: list[tuple[KeyPath, list[str]]] = []
    if config.models is not None:
        groups.append((("models",), [entry.model for entry in config.models]))
    for index, output_slice in enumerate(config.slices or []):
        groups.append((("slices", index, "sources"), [source.model for source in output_slice.sources]))
    base = config.base_model
    for path, names in groups:
        # mergekit adds a base that a list leaves out; a method without a base merges every listed model.
        count = len(names) + (1 if base and base not in names and method.base != "none" else 0)
        if not method.accepts(count, has_base=bool(base)):
            others = names if method.base == "none" else [name for name in names if name != base]
            listed = ", ".join(others) or "none"
            raise BadInputError(
                f"{loaded.where(path)}: {method.name} takes {method.count_text()}, got {len(others)} ({listed})."
            )


def unweighted_models(loaded: LoadedConfig) -> tuple[list[str], list[str]]:
    """(models merged with a weight of their own or a global one, models merged without) of a ``models:``
    config whose method takes per-model weights; the base of a method that merges against it is left out."""
    config = loaded.config
    method = get_method(config.merge_method)
    spec = method.param("weight")
    if config.models is None or spec is None or spec.scope != "model":
        return [], []
    merged = [entry for entry in config.models if method.base == "none" or entry.model != config.base_model]
    if "weight" in config.parameters:
        return [entry.model for entry in merged], []
    weighted = [
        entry.model for entry in merged if "weight" in {**config.model_parameters(entry.model), **entry.parameters}
    ]
    return weighted, [entry.model for entry in merged if entry.model not in weighted]


def _check_weights(loaded: LoadedConfig, method: MethodSpec) -> None:
    """Some models weighted and another not is a mistake (mergekit refuses it too); none weighted is equal weights."""
    weighted, unweighted = unweighted_models(loaded)
    if weighted and unweighted:
        index = next(i for i, entry in enumerate(loaded.config.models) if entry.model == unweighted[0])
        raise BadInputError(
            f"{loaded.where(('models', index))}: {unweighted[0]} has no weight while {weighted[0]} has one; give "
            "every merged model a weight (or none of them, for equal weights)."
        )


def _check_tokenizer_source(loaded: LoadedConfig) -> None:
    """``model:`` with nothing after it names no model; any other word is a model (found while planning)."""
    source = loaded.config.tokenizer_choice
    if source == "model:" or (source or "").strip() != (source or ""):
        key = ("tokenizer", "source") if loaded.config.tokenizer is not None else ("tokenizer_source",)
        raise BadInputError(f"{loaded.where(key)} must be base, union or a model (folder or hub id), got {source!r}.")


__all__ = ["validate_parameters", "format_path"]
