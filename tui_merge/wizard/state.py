"""Everything the wizard's steps decide, in one object, and its translation to and from a config.

Screens are created and destroyed as the user moves between steps, so no
decision lives in a widget: each screen reads this state when it appears and
writes it back on every change. The state renders to config text through the
same code as ``tui-merge template``, and the merge runs that text through the
same planner and executor as ``tui-merge run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_merge.compatibility.check import check_compatibility
from tui_merge.compatibility.findings import CompatibilityReport
from tui_merge.config.loading import LoadedConfig, parse_config
from tui_merge.config.pinning import pinned_models, pinned_recipe
from tui_merge.config.rendering import (
    ComponentFilter,
    Recipe,
    RecipeModel,
    component_filters,
    outside_rows,
    render_recipe,
    stack_rows,
)
from tui_merge.engine.tasks import OUTPUT_DTYPES
from tui_merge.methods.registry import METHODS, get_method
from tui_merge.methods.spec import MethodSpec
from tui_merge.models.info import ModelInfo, distinct_labels
from tui_merge.wizard.grid import GridColumn, LayerGrid


def free_name(path: Path) -> Path:
    """``merge-2.yaml``, ``merge-3.yaml``, … beside ``path``: the first that does not exist."""
    number = 2
    while (candidate := path.with_name(f"{path.stem}-{number}{path.suffix}")).exists():
        number += 1
    return candidate


@dataclass
class WizardState:
    """The merge being built."""

    models: list[str] = field(default_factory=list)
    """Model arguments in priority order, as the user gave them."""
    infos: dict[str, ModelInfo] = field(default_factory=dict)
    base: str | None = None
    vocab: str | None = None
    """The vocabulary fix chosen on the analysis step: truncate, pad, union, or position (rows as they are)."""
    method_name: str = "linear"
    global_values: dict[str, Any] = field(default_factory=dict)
    """Global parameters other than the per-layer one."""
    model_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-model parameters other than the per-layer one, by model."""
    grid: LayerGrid | None = None
    layer_memory: dict[tuple[str, str | None], dict[str, float]] = field(default_factory=dict)
    """Every layer value the table has shown, by (column key, component filter) and row label.

    Changing the models or the method rebuilds the table; what was set for a
    column that comes back (a model removed and added again, slerp chosen
    again) is restored from here instead of being reset."""
    grid_note: str | None = None
    """What the last rebuild of the table could not keep, to be said when the table is shown."""
    split: bool = False
    """The layer values are split into attention, MLP (a mixture of experts: its router and shared experts
    too) and the rest of each layer."""
    output: str = ""
    replace_output: bool = False
    """The user confirmed replacing an existing non-empty output folder (after success only)."""
    download: bool = False
    """The user agreed to download from the Hub the weight files the merge reads (``engine.download``)."""
    out_dtype: str | None = None
    shard_size: str = "5GB"
    device: str = "auto"
    tokenizer_source: str | None = None
    chat_template: str | None = None
    """Kept from a reopened config (the wizard does not edit it), so saving it again keeps it."""
    seed: int = 0
    config_path: str = "merge.yaml"
    config_read: str | None = None
    """The text this session read from ``config_path`` (a reopened config) or wrote there last: while the file
    still holds it, it is this session's and is replaced without asking."""
    leftover_resumable: bool | None = None
    """What Review found of an interrupted merge at the output: True when it is this plan's (the Run step
    offers to resume it), False when it is another's (only starting over is offered), None when none."""

    @property
    def method(self) -> MethodSpec:
        """The chosen method's spec."""
        return get_method(self.method_name)

    @property
    def effective_base(self) -> str | None:
        """The base the config will name: the marked one, else the first model when the method needs one."""
        if self.base in self.models:
            return self.base
        return self.models[0] if self.models and self.method.base == "required" else None

    @property
    def merged_models(self) -> list[str]:
        """The models whose tensors the method combines (the base excluded when the method takes one)."""
        base = self.effective_base
        return [name for name in self.models if self.method.base == "none" or name != base]

    def reference(self) -> ModelInfo:
        """The model whose layout the output follows."""
        return self.infos[self.effective_base or self.models[0]]

    def report(self) -> CompatibilityReport:
        """The compatibility findings for the current models."""
        infos = [self.infos[name] for name in self.models]
        base = self.infos.get(self.effective_base or self.models[0])
        return check_compatibility(infos, base=base, method=self.method_name)

    def value(self, name: str, model: str | None = None) -> Any:
        """A scalar parameter's current value (where the registry starts a new config when unset)."""
        spec = self.method.param(name)
        stored = self.model_values.get(model, {}) if model else self.global_values
        return stored.get(name, spec.starting_value if spec else None)

    def set_value(self, name: str, value: Any, model: str | None = None) -> None:
        """Set a scalar parameter, for one model or globally."""
        if model:
            self.model_values.setdefault(model, {})[name] = value
        else:
            self.global_values[name] = value

    def add_model(self, name: str, info: ModelInfo) -> None:
        """List ``name`` (inspected as ``info``) last; the layer table is rebuilt when next shown."""
        self.models.append(name)
        self.infos[name] = info
        self.layers_changed()

    def remove_model(self, name: str) -> None:
        """Take ``name`` off the list (and off the base); the layer table is rebuilt when next shown."""
        self.models.remove(name)
        self.infos.pop(name, None)
        if self.base == name:
            self.base = None
        self.layers_changed()

    def replace_model(self, old: str, new: str, info: ModelInfo) -> None:
        """``new`` (the same model with another adapter, or none) in ``old``'s place, as the base if it was."""
        self.models[self.models.index(old)] = new
        self.infos.pop(old, None)
        self.infos[new] = info
        if self.base == old:
            self.base = new
        self.layers_changed()

    def layers_changed(self) -> None:
        """The models, their order, the base or the method changed: rebuild the table when next shown."""
        self._remember_grid()
        self.grid = None

    def _remember_grid(self) -> None:
        grid = self.grid
        if grid is None:
            return
        for index, column in enumerate(grid.columns):
            remembered = self.layer_memory.setdefault((column.key, column.part.filter if column.part else None), {})
            for row_index, row in enumerate(grid.rows):
                if grid.exists(row_index, index):
                    remembered[row.label] = grid.value(row_index, index)

    def rebuild_grid(self) -> LayerGrid | None:
        """The layer grid for the current models and method (None when the method has no per-layer value).

        Values set earlier for the same column and row come back from
        ``layer_memory``; ``grid_note`` says which columns start from defaults instead.
        """
        self._remember_grid()
        self.grid_note = None
        name = self.method.per_layer_param
        if name is None or not self.models:
            self.grid = None
            return None
        spec = self.method.param(name)
        reference = self.reference()
        if name == "t":
            columns = [GridColumn("t", "t", spec)]
            defaults = [spec.starting_value]
        else:
            merged = self.merged_models
            labels = distinct_labels([self.infos[model] for model in merged])
            columns = [GridColumn(model, _short(label), spec) for model, label in zip(merged, labels)]
            defaults = [round(1 / len(merged), 2)] * len(merged) if merged else []
        grid = LayerGrid.filled(outside_rows(reference), reference.depth, columns, defaults, stack_rows(reference))
        if self.split:
            grid = grid.with_parts(self.component_parts())
        self.grid = grid
        if self.layer_memory:
            self._restore(grid)
        return grid

    def _restore(self, grid: LayerGrid) -> None:
        """Fill ``grid`` from ``layer_memory``; note the columns and rows that start from their defaults."""
        fresh_columns: list[str] = []
        fresh_rows: set[str] = set()
        for index, column in enumerate(grid.columns):
            remembered = self.layer_memory.get((column.key, column.part.filter if column.part else None))
            if remembered is None:
                fresh_columns.append(f"{grid.heading(index)} starts at {grid.value(0, index):g}")
                continue
            fresh_rows.update(row.label for row in grid.rows if row.label not in remembered)
            grid.load_column(index, lambda row, remembered=remembered: remembered.get(row.label))
        said = fresh_columns + [f"{label} starts at the default" for label in sorted(fresh_rows)][:3]
        if said:
            self.grid_note = "Kept every value that still fits; " + "; ".join(said) + "."

    def component_parts(self) -> list[ComponentFilter]:
        """The attention and MLP filters of the reference model ([] when its names allow no split)."""
        return component_filters(self.reference()) if self.models else []

    def set_split(self, split: bool) -> str | None:
        """Split the layer values by component or join them; the reason when that cannot be done."""
        parts = self.component_parts() if split else []
        if split and not parts:
            return f"{self.reference().label}'s tensor names do not separate attention from MLP in every layer."
        self.split = split
        if self.grid is not None:
            self.grid = self.grid.with_parts(parts)
        return None

    def recipe(self) -> Recipe:
        """The merge as a recipe, ready to render."""
        method = self.method
        grid = self.grid if self.grid is not None else self.rebuild_grid()
        merged = self.merged_models
        models = [RecipeModel(name, self._parameters(grid, name) if name in merged else {}) for name in self.models]
        parameters = self._parameters(grid, None)
        options: dict[str, Any] = {"seed": self.seed, "shard_size": self.shard_size, "device": self.device}
        if self.vocab in ("truncate", "pad", "union"):
            options["vocab"] = self.vocab
        return Recipe(
            method=method.name,
            models=models,
            base=self.effective_base,
            parameters=parameters,
            dtype=self.out_dtype,
            tokenizer_source=self.tokenizer_source,
            chat_template=self.chat_template,
            tui_merge=options,
            comments=[f"{method.name} merge from the tui-merge wizard; replay: tui-merge run THIS_FILE OUT"],
        )

    def _parameters(self, grid: LayerGrid | None, model: str | None) -> dict[str, Any]:
        """One model's parameters (``model``), or the global ones (None): per layer from the grid, else as set.

        A parameter nobody set is written at the registry's starting value when
        that differs from its default (``t``, ``density``), so the config says
        what it does and is always valid; others are left to their defaults.
        """
        scope, stored = ("model", self.model_values.get(model, {})) if model else ("global", self.global_values)
        column = model or "t"
        parameters: dict[str, Any] = {}
        for spec in self.method.params:
            if spec.scope != scope:
                continue
            if spec.name == self.method.per_layer_param and grid is not None and column in grid.keys:
                parameters[spec.name] = grid.per_layer(column)
            elif spec.name in stored:
                parameters[spec.name] = stored[spec.name]
            elif spec.required or spec.suggested is not None:
                parameters[spec.name] = spec.starting_value
        return parameters

    def output_problem(self) -> str | None:
        """Why the output folder cannot be used (none given, inside an input or holding one), or None; both
        wizards ask this one rule, which the merge job asks again."""
        from tui_merge.engine.preflight import output_overlaps_input

        if not self.output:
            return "Choose an output folder."
        return output_overlaps_input(Path(self.output), [self.infos[name] for name in self.models])

    @staticmethod
    def shard_size_problem(text: str) -> str | None:
        """Why ``text`` is not a largest shard size (``5GB``, ``2000MiB``, bytes above 0), or None."""
        from tui_merge.config.schema import parse_size

        try:
            return None if parse_size(text) > 0 else "The largest shard must be larger than 0 bytes."
        except ValueError as error:
            return f"{error}."

    def method_choices(self) -> list[tuple[str, str]]:
        """Every method as (``name: what it does``, name), in the registry's order: both wizards offer them all,
        and ``method_problem`` says why one cannot merge these models."""
        return [(f"{method.name}: {method.summary}", method.name) for method in METHODS]

    def method_problem(self, name: str) -> str | None:
        """Why method ``name`` cannot merge these models with or without a base, None when it can."""
        method = get_method(name)
        count = len(self.models)
        if method.accepts(count, True) or method.accepts(count, False):
            return None
        return f"{name} takes {method.count_text()}; you have {count} models."

    def dtype_choices(self) -> list[tuple[str, str | None]]:
        """The output dtypes to offer as (label, value): the base model's own (None: the config names no dtype,
        as a mergekit recipe without ``dtype:``), then each one by name."""
        own = self.reference().weight_dtype if self.models else None
        same = f"same as the base model ({own})" if own else "same as the base model"
        return [(same, None), *((name, name) for name in sorted(OUTPUT_DTYPES))]

    def device_choices(self) -> list[tuple[str, str]]:
        """The devices to offer as (label, value): auto, the CPU, and the one a reopened config names."""
        choices = [("auto: CUDA when torch sees one, else the CPU", "auto"), ("cpu", "cpu")]
        if self.device not in ("auto", "cpu"):
            choices.append((self.device, self.device))
        return choices

    def tokenizer_choices(self) -> list[tuple[str, str | None]]:
        """The tokenizer sources to offer as (label, value): automatic, the base's, the union, each model's, and
        the one a reopened config names."""
        choices: list[tuple[str, str | None]] = [
            ("automatic: the model that ships special_tokens_map.json, else the base, else the first", None),
            ("the base model's", "base"),
            ("the union of the tokenizers", "union"),
        ]
        choices += [(f"{self.infos[name].label}'s", f"model:{name}") for name in self.models]
        if self.tokenizer_source is not None and self.tokenizer_source not in [value for _, value in choices]:
            choices.append((self.tokenizer_source, self.tokenizer_source))
        return choices

    def config_text(self) -> str:
        """The config the merge will run, as YAML text, each hub id pinned to its commit (``config.pinning``)."""
        return pinned_recipe(render_recipe(self.recipe()), self.infos)

    def job_models(self) -> dict[str, ModelInfo]:
        """The inspected models by the names ``config_text`` gives them (a hub id at its commit)."""
        return pinned_models(self.infos)

    def loaded_config(self) -> LoadedConfig:
        """The config text parsed and validated, as ``tui-merge run`` would."""
        return parse_config(self.config_text(), self.config_path)


def _short(label: str, width: int = 14) -> str:
    return label if len(label) <= width else "…" + label[-(width - 1) :]
