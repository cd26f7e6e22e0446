"""Merge configs: mergekit's YAML dialect, validated with file and line in every error."""

from tui_merge.config.loading import LoadedConfig, load_config, parse_config
from tui_merge.config.schema import MergeConfig

__all__ = ["LoadedConfig", "MergeConfig", "load_config", "parse_config"]
