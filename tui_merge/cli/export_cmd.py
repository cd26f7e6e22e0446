"""``tui-merge export --mergekit``: the config as a plain mergekit recipe, without our ``tui_merge:`` block.

mergekit 0.0.2's ``input_model_parameters`` are written into the models' own
parameters, which every later mergekit reads: into each ``models:`` entry
(an entry's own value wins, as it did), or into each slice source whose
slice does not set the name (a slice's value outranked them). The text is
then written anew, so its comments are not kept; a line on stderr says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from tui_merge.config.loading import MAX_CONFIG_BYTES, load_config, parse_config, read_text
from tui_merge.tools.stages import documents, is_multi_stage, read_stages


def run(args: argparse.Namespace) -> int:
    """Print the config with the ``tui_merge:`` block removed; comments and layout are kept."""
    text = read_text(Path(args.config), "Config file", MAX_CONFIG_BYTES)
    if is_multi_stage(text):
        # A multi-stage recipe (mergekit-multi's): each document loses its block, the stages stay as written.
        exported = "---\n".join(strip_block(body, "tui_merge") for _, body in documents(text))
        read_stages(exported, args.config)
        print(exported.rstrip("\n"))
        return 0
    loaded = load_config(Path(args.config))
    text = strip_block(loaded.text, "tui_merge")
    if loaded.config.input_model_parameters:
        text = yaml.safe_dump(fold_input_model_parameters(yaml.safe_load(text)), sort_keys=False, allow_unicode=True)
        print(
            "tui-merge: input_model_parameters are written into the models' own parameters; comments are not kept.",
            file=sys.stderr,
        )
    parse_config(text, args.config)
    print(text.rstrip("\n"))  # one line end, even when the file has none
    return 0


def fold_input_model_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a parsed config) with ``input_model_parameters`` moved into the models' own parameters."""
    by_model = data.pop("input_model_parameters", None) or {}
    for entry in data.get("models") or []:
        own = entry.get("parameters") or {}
        merged = {**by_model.get(entry["model"], {}), **own}
        if merged:
            entry["parameters"] = merged
    for output_slice in data.get("slices") or []:
        above = output_slice.get("parameters") or {}
        for source in output_slice.get("sources") or []:
            own = source.get("parameters") or {}
            added = {name: value for name, value in by_model.get(source["model"], {}).items()
                     if name not in own and name not in above}  # fmt: skip
            if added:
                source["parameters"] = {**own, **added}
    return data


def strip_block(text: str, key: str) -> str:
    """Remove one top-level key and its indented body (and comments inside it) from YAML text."""
    kept, skipping = [], False
    for line in text.splitlines(keepends=True):
        top_level = bool(line.strip()) and not line[0].isspace() and not line.startswith("#")
        if top_level:
            skipping = line.split(":", 1)[0].strip() == key
        if not skipping:
            kept.append(line)
    return "".join(kept)
