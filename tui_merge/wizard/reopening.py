"""A saved config read back into the wizard's state: ``tui-merge wizard --config``, and the wizard's Open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tui_merge.config.loading import LoadedConfig, load_config
from tui_merge.config.parameters import TensorPlace, evaluate, is_conditions, layer_position
from tui_merge.config.rendering import ComponentFilter
from tui_merge.engine.prepare import inspect_models
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo
from tui_merge.wizard.grid import GridRow
from tui_merge.wizard.state import WizardState


def load_state(path: str, cache_dir: Path | None = None) -> WizardState:
    """The state of a saved config file, its models inspected; BadInputError when it cannot be read."""
    loaded = load_config(Path(path))
    state = state_from_config(loaded, inspect_models(loaded, cache_dir))
    state.config_path = path
    state.config_read = loaded.text
    return state


def state_from_config(loaded: LoadedConfig, infos: dict[str, ModelInfo]) -> WizardState:
    """The state that renders to an equivalent config (models-mode configs only)."""
    config = loaded.config
    if config.models is None:
        what = "gives each part its own models with modules:" if config.modules else "stacks layers with slices"
        raise BadInputError(
            f"{loaded.source} {what}, which the wizard does not edit; edit it in a text "
            "editor and replay it with tui-merge run."
        )
    block = config.tokenizer
    if block is not None and (block.tokens or block.pad_to_multiple_of):
        raise BadInputError(
            f"{loaded.source} names rows per token or pads them (tokenizer.tokens, pad_to_multiple_of), which "
            "the wizard does not edit; edit it in a text editor and replay it with tui-merge run."
        )
    options = config.tui_merge
    state = WizardState(
        models=[entry.model for entry in config.models],
        infos=infos,
        base=config.base_model,
        vocab=options.vocab,
        method_name=config.merge_method,
        out_dtype=config.output_dtype,
        shard_size=str(options.shard_size),
        device=options.device,
        tokenizer_source=config.tokenizer_choice,
        chat_template=config.chat_template,
        seed=options.seed,
        config_path=loaded.source,
    )
    if state.base and state.base not in state.models:
        state.models.insert(0, state.base)
    varying = state.method.per_layer_param
    for name, value in config.parameters.items():
        if name != varying:
            state.global_values[name] = value
    # mergekit 0.0.2's input_model_parameters rank below an entry's own: both become the entry's values.
    per_model = {entry.model: {**config.model_parameters(entry.model), **entry.parameters} for entry in config.models}
    for model, parameters in per_model.items():
        for name, value in parameters.items():
            if name != varying:
                state.model_values.setdefault(model, {})[name] = value
    filters = {part.filter for part in state.component_parts()}
    state.split = bool(filters) and any(
        is_conditions(level.get(varying)) and any(row.get("filter") in filters for row in level[varying])
        for level in [config.parameters, *per_model.values()]
    )
    grid = state.rebuild_grid()
    if grid is not None:
        reference = state.reference()
        for index, column in enumerate(grid.columns):
            levels = [config.parameters] if column.key == "t" else [per_model.get(column.key, {}), config.parameters]

            def value_of(
                row: GridRow, levels: list[dict[str, Any]] = levels, part: ComponentFilter | None = column.part
            ) -> float | None:
                if not row.main_layer and part is not None:
                    return None
                place = _place(reference, row, part, filters if state.split else None)
                for level in levels:
                    if varying in level:
                        found = evaluate(level[varying], place)
                        if found is not None:
                            return found
                return None

            grid.load_column(index, value_of)
    return state


def _place(
    reference: ModelInfo, row: GridRow, part: ComponentFilter | None = None, split_filters: set[str] | None = None
) -> TensorPlace:
    """A tensor that stands for the cell when evaluating filters and gradients.

    A component column stands for the layer's first tensor of that component;
    the rest column, when split, for its first tensor that no component filter
    matches (a norm).
    """
    if row.outside is not None:
        name = next((name for name in reference.tensors if row.outside.filter in name), row.outside.filter)
        return TensorPlace(name, 0.0)
    prefix, depth = (row.stack.filter.removesuffix("."), row.stack.depth) if row.stack else (
        reference.block_prefix, reference.depth)  # fmt: skip
    names = sorted(
        name for name, role in reference.roles.items() if role.layer == row.layer and role.block_prefix == prefix
    )
    if part is not None:
        names = [name for name in names if part.filter in name] or names
    elif split_filters:
        names = [name for name in names if not any(text in name for text in split_filters)] or names
    return TensorPlace(names[0] if names else f"{prefix}.{row.layer}.", layer_position(row.layer, depth))
