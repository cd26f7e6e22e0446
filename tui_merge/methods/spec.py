"""What a merge method is, as data: its parameters with their ranges and defaults, the inputs it takes, and
where its kernel and block merger live (``module:function``, imported only when a merge runs)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ParamKind = Literal["float", "int", "bool", "choice"]
Scope = Literal["global", "model"]
BaseUse = Literal["required", "optional", "none"]


FLOAT32_MAX = 3.4028234663852886e38
"""Parameters are applied in float32: a larger value would turn every weight it touches into infinity."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a method."""

    name: str
    kind: ParamKind
    default: Any
    """Value when the config gives none; None means the config must give one."""
    help: str
    scope: Scope = "global"
    """``model``: each model has its own value; ``global``: one value for the merge."""
    minimum: float | None = None
    maximum: float | None = None
    suggested: Any = None
    """What a new config starts from, written into it, when the default would do nothing useful or
    there is none: ``t`` of slerp starts halfway; ``density`` defaults to 1 as in mergekit (a recipe
    that leaves it out keeps every value, as it would there) but a new TIES or DARE config starts at
    0.5, which prunes."""
    choices: tuple[str, ...] = ()
    """The words a ``choice`` parameter takes."""
    hidden: bool = False
    """Accepted from recipes (and the commands that write them) but not asked by the wizards."""

    @property
    def starting_value(self) -> Any:
        """The value the wizard, the plain wizard and ``template`` start a new config from: the
        suggestion, else the default. The one source of that number for every front end."""
        return self.suggested if self.suggested is not None else self.default

    @property
    def required(self) -> bool:
        """True when a config must set this parameter."""
        return self.default is None

    @property
    def varies_by_tensor(self) -> bool:
        """Numbers may be gradients or filtered per tensor; switches and choices may not."""
        return self.kind not in ("bool", "choice")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be this parameter, as ``must be between 0 and 1, got 1.5``; None when it can.

        The one range rule: config validation, the wizard's form and the plain
        wizard's questions all ask it. NaN and infinities are never a value.
        """
        if self.kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.kind == "choice":
            return None if value in self.choices else f"must be {self.range_text()}, got {value!r}"
        number_types = (int,) if self.kind == "int" else (int, float)
        bounded = "" if self.minimum is None and self.maximum is None else f" {self.range_text()}"
        if isinstance(value, bool) or not isinstance(value, number_types):
            wanted = "a whole number" if self.kind == "int" else "a number"
            return f"must be {wanted}{bounded}, got {value!r}"
        if not math.isfinite(value):
            return f"must be a finite number{bounded}, got {value!r}"
        if abs(value) > FLOAT32_MAX:
            return f"must be a number float32 can hold{bounded}, got {value!r}"
        too_low = self.minimum is not None and value < self.minimum
        too_high = self.maximum is not None and value > self.maximum
        return f"must be {self.range_text()}, got {value!r}" if too_low or too_high else None

    def parse(self, text: str) -> Any:
        """A typed answer as this parameter's value (int or float), or the text itself when it is not a number."""
        try:
            return int(text) if self.kind == "int" else float(text)
        except ValueError:
            return text.strip()

    def range_text(self) -> str:
        """``between 0 and 1``, ``at least 0``, ``one of sum, count``... for messages and help."""
        if self.kind == "choice":
            return f"one of {', '.join(self.choices)}"
        if self.minimum is not None and self.maximum is not None:
            return f"between {self.minimum:g} and {self.maximum:g}"
        if self.minimum is not None:
            return f"at least {self.minimum:g}"
        if self.maximum is not None:
            return f"at most {self.maximum:g}"
        return "any number"

    def clamp(self, value: float) -> float:
        """``value`` moved into the range (a nudged layer value stops at the edge)."""
        if self.minimum is not None:
            value = max(self.minimum, value)
        if self.maximum is not None:
            value = min(self.maximum, value)
        return value


@dataclass(frozen=True)
class MethodSpec:
    """One merge method."""

    name: str
    summary: str
    kernel: str
    """``module:function`` of the pure function that merges one tensor."""
    params: tuple[ParamSpec, ...]
    base: BaseUse
    min_models: int
    """Fewest models besides the base."""
    max_models: int | None = None
    random: bool = False
    """Draws random numbers (seeded per tensor from ``tui_merge.seed``)."""
    reference: str = ""
    elementwise: bool = False
    """Each output value depends only on the inputs at its position or in its row (DELLA ranks within rows),
    and random draws come from one generator per model in row order: large tensors may merge a block of rows
    at a time, which keeps memory flat however large the tensor."""
    blocks: str = ""
    """``module:Class`` that merges a large tensor by blocks after passes that gather its statistics
    (see ``methods.blocks``); empty when the method needs whole tensors or is elementwise."""

    def param(self, name: str) -> ParamSpec | None:
        """The parameter called ``name``, if the method has one."""
        return next((spec for spec in self.params if spec.name == name), None)

    @property
    def per_layer_param(self) -> str | None:
        """The parameter a layer table edits: ``t`` (slerp, nearswap), else ``weight``, else None."""
        if self.param("t"):
            return "t"
        return "weight" if self.param("weight") else None

    def accepts(self, model_count: int, has_base: bool) -> bool:
        """Whether the method can merge ``model_count`` models, one of them the base when ``has_base``.

        The one count rule: config validation, the wizard's method step and the
        plain wizard's method and base questions all ask it. A method without
        a base ignores one; a method that needs one refuses to go without.
        """
        if self.base == "required" and not has_base:
            return False
        merged = model_count - (1 if has_base and self.base != "none" else 0)
        return merged >= self.min_models and (self.max_models is None or merged <= self.max_models)

    def count_text(self) -> str:
        """``exactly 1 model besides the base``, ``at least 2 models``..."""
        besides = " besides the base" if self.base != "none" else ""
        plural = "s" if self.min_models != 1 else ""
        if self.max_models == self.min_models:
            return f"exactly {self.min_models} model{plural}{besides}"
        if self.max_models is None:
            return f"at least {self.min_models} model{plural}{besides}"
        return f"{self.min_models} to {self.max_models} models{besides}"

    def load_kernel(self) -> Callable[..., Any]:
        """Import and return the kernel function."""
        module, _, function = self.kernel.partition(":")
        return getattr(importlib.import_module(module), function)

    def load_blocks(self) -> type | None:
        """Import and return the block merger class, if the method has one."""
        if not self.blocks:
            return None
        module, _, name = self.blocks.partition(":")
        return getattr(importlib.import_module(module), name)
