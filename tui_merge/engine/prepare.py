"""From a config file to a plan: load the config, inspect every model it names, plan the merge."""

from __future__ import annotations

from pathlib import Path

from tui_merge.config.loading import LoadedConfig, load_config
from tui_merge.engine.plan import Plan, build_plan
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo, load_model_info, repeated_model, same_model_sentence


def inspect_models(loaded: LoadedConfig, cache_dir: Path | None = None) -> dict[str, ModelInfo]:
    """ModelInfo of every model the config names, keyed by the name as written (paths relative to here).

    A ``models:`` list that names one model twice (by the same name, another path or a symlink) is
    refused; slices may take layers of one model as often as they like.
    """
    infos = {name: load_model_info(name, cache_dir) for name in loaded.config.referenced_models()}
    if loaded.config.models is not None:
        repeated = repeated_model([(entry.model, infos[entry.model]) for entry in loaded.config.models])
        if repeated is not None:
            raise BadInputError(f"{loaded.source}: {same_model_sentence(*repeated)}")
    return infos


def prepare(config_path: Path, cache_dir: Path | None = None) -> Plan:
    """Load, validate and plan ``config_path``; raises BadInputError before anything is written."""
    loaded = load_config(config_path)
    return build_plan(loaded, inspect_models(loaded, cache_dir))
