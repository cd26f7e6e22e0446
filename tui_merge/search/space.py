"""What a search varies: ``--space NAME=SPEC``, checked against the recipe's method before the first trial.

``NAME`` is where the value goes, as ``sweep`` spells it: a global parameter (``t``, ``parameters.density``) or
one model's own (``models[1].weight``). ``SPEC`` is

* ``LO..HI``: a number in that range (a whole number when the parameter is one);
* ``V1,V2,...``: one of these values (YAML: numbers, words, lists);
* ``LO..HI@layers``: one value per layer of the recipe's model (a list as long as its stack: mergekit reads a
  list of that length as each layer's own value);
* ``LO..HI@K``: a gradient of K anchors (a list of K values spread over the layers), which keeps CMA-ES
  tractable on deep models.

A range must lie inside the parameter's own range (``tui-merge methods NAME``); a parameter the method lacks, a
model index the recipe lacks, or a global value that every model overrides is refused naming the ``--space``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from tui_merge.config.loading import LoadedConfig
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import get_method
from tui_merge.methods.spec import ParamSpec

_MODEL_PATH = re.compile(r"^models\[(\d+)\]\.(\w+)$")
_RANGE = re.compile(r"^\s*(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)\s*(?:@\s*(layers|\d+))?\s*$")
DECIMALS = 4
"""A sampled number is written into the trial's recipe with this many decimals: a merge ratio needs no more,
and the recipe stays readable (the table shows the value as written, the recipe is what replays)."""


@dataclass(frozen=True)
class Dimension:
    """One ``--space``: where its value goes and what it may be."""

    name: str
    """As given before ``=`` (``t``, ``models[1].weight``)."""
    model: int | None
    """Index into ``models:`` for a model's own parameter, None for the global one."""
    spec: ParamSpec
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    anchors: int = 0
    """0 for one value; else a list of this many values (one per layer with ``@layers``)."""
    per_layer: bool = False

    @property
    def integer(self) -> bool:
        return self.spec.kind == "int"

    @property
    def path(self) -> tuple[str | int, ...]:
        """The key path of the value in the recipe."""
        if self.model is None:
            return ("parameters", self.spec.name)
        return ("models", self.model, "parameters", self.spec.name)

    @property
    def keys(self) -> list[str]:
        """The study's parameter names: ``t``, or ``t[0]``, ``t[1]``, ... for a list."""
        return [self.name] if not self.anchors else [f"{self.name}[{index}]" for index in range(self.anchors)]

    def suggest(self, trial: Any) -> Any:
        """This dimension's value for an Optuna trial (asked once per key)."""
        values = [self._suggest_one(trial, key) for key in self.keys]
        return values if self.anchors else values[0]

    def _suggest_one(self, trial: Any, key: str) -> Any:
        if self.choices:
            return trial.suggest_categorical(key, list(self.choices))
        if self.integer:
            return trial.suggest_int(key, int(self.low), int(self.high))
        return self.written(trial.suggest_float(key, self.low, self.high))

    def written(self, value: Any) -> Any:
        """A sampled value as the trial's recipe holds it."""
        return round(value, DECIMALS) if isinstance(value, float) and not self.choices else value

    def grid(self, steps: int) -> dict[str, list[Any]]:
        """The values a grid search tries for each key: the choices, or ``steps`` evenly spaced points."""
        if self.choices:
            return {key: list(self.choices) for key in self.keys}
        if self.integer:
            return {key: list(range(int(self.low), int(self.high) + 1)) for key in self.keys}
        points = [round(self.low + (self.high - self.low) * step / (steps - 1), DECIMALS) for step in range(steps)]
        return {key: points for key in self.keys}

    def describe(self) -> str:
        what = ", ".join(str(choice) for choice in self.choices) if self.choices else f"{self.low}..{self.high}"
        if self.per_layer:
            what += f", one per layer ({self.anchors})"
        elif self.anchors:
            what += f", a gradient of {self.anchors} anchors"
        return f"{self.name}: {what}"


def parse_dimension(text: str, loaded: LoadedConfig, depth: int | None) -> Dimension:
    """``NAME=SPEC`` checked against the recipe; ``depth`` is the recipe's layer count (for ``@layers``)."""
    name, sep, spec_text = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec_text.strip():
        raise BadInputError(f"--space {text}: write it as NAME=LO..HI, NAME=V1,V2,... or NAME=LO..HI@layers.")
    model, parameter = place_of(name, loaded, f"--space {text}", "search")
    method = get_method(loaded.config.merge_method)
    spec = next((spec for spec in method.params if spec.name == parameter), None)
    if spec is None:
        known = ", ".join(spec.name for spec in method.params if not spec.hidden) or "none"
        raise BadInputError(f"--space {text}: {method.name} has no parameter {parameter}; its parameters: {known}.")
    if model is not None and spec.scope != "model":
        raise BadInputError(f"--space {text}: {parameter} is one value for the whole merge; write {parameter}=...")
    match = _RANGE.match(spec_text)
    if match:
        return _ranged(text, name, model, spec, match, depth)
    try:
        choices = yaml.safe_load(f"[{spec_text}]")
    except yaml.YAMLError:
        choices = None
    if not choices or any(choice is None for choice in choices):
        raise BadInputError(f"--space {text}: give a range LO..HI or values V1,V2,... after '='.")
    for choice in choices:
        _check_value(text, spec, choice)
    return Dimension(name, model, spec, choices=tuple(choices))


def place_of(name: str, loaded: LoadedConfig, said: str, verb: str) -> tuple[int | None, str]:
    """The model index (None: global) and the parameter a name points at (``t``, ``parameters.t``,
    ``models[1].weight``), as ``sweep --vary`` and ``search --space`` read it; ``said`` begins each refusal
    (``--space t=0..1``), ``verb`` says what to do instead (``search``, ``vary``)."""
    config = loaded.config
    match = _MODEL_PATH.match(name)
    if match:
        index, parameter = int(match[1]), match[2]
        if config.models is None or index >= len(config.models):
            count = len(config.models or [])
            raise BadInputError(f"{said}: the config has {count} models (models[0] to models[{count - 1}]).")
        return index, parameter
    parameter = name.removeprefix("parameters.")
    if not re.fullmatch(r"\w+", parameter):
        raise BadInputError(f"{said}: name a parameter (t), parameters.NAME or models[I].NAME.")
    setting = [entry.model for entry in config.models or [] if parameter in entry.parameters]
    if setting:
        raise BadInputError(
            f"{said}: {', '.join(setting)} set {parameter} themselves, so the global value would change "
            f"nothing; {verb} models[I].{parameter} instead."
        )
    return None, parameter


def _ranged(text: str, name: str, model: int | None, spec: ParamSpec, match: re.Match, depth: int | None) -> Dimension:
    try:
        low, high = float(match[1]), float(match[2])
    except ValueError:
        raise BadInputError(f"--space {text}: the range's ends are not numbers.") from None
    if spec.kind not in ("float", "int"):
        raise BadInputError(f"--space {text}: {spec.name} is not a number; list its values instead (V1,V2).")
    if not low < high:
        raise BadInputError(f"--space {text}: the range's low end must be below its high end.")
    if spec.kind == "int" and not (low.is_integer() and high.is_integer()):
        raise BadInputError(f"--space {text}: {spec.name} is a whole number; give whole ends.")
    for end in (low, high):
        _check_value(text, spec, int(end) if spec.kind == "int" else end)
    anchors, per_layer = 0, False
    if match[3] == "layers":
        if depth is None:
            raise BadInputError(f"--space {text}: the recipe's model has no stack of layers to give values to.")
        anchors, per_layer = depth, True
    elif match[3] is not None:
        anchors = int(match[3])
        if anchors < 2:
            raise BadInputError(f"--space {text}: a gradient needs at least 2 anchors (@2).")
    if anchors and not spec.varies_by_tensor:
        raise BadInputError(f"--space {text}: {spec.name} is one value for every layer; drop the @.")
    return Dimension(name, model, spec, low=low, high=high, anchors=anchors, per_layer=per_layer)


def _check_value(text: str, spec: ParamSpec, value: Any) -> None:
    problem = spec.problem(value)
    if problem:
        raise BadInputError(f"--space {text}: {spec.name} {problem} (see tui-merge methods).")


def values_of(dimensions: list[Dimension], params: dict[str, Any]) -> dict[str, Any]:
    """A trial's values by dimension name, from the study's parameters by key (a list put back together)."""
    values = {}
    for dimension in dimensions:
        found = [dimension.written(params[key]) for key in dimension.keys]
        values[dimension.name] = found if dimension.anchors else found[0]
    return values
