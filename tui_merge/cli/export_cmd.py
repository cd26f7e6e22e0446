"""``tui-merge export --mergekit``: the config as a plain mergekit recipe, without our ``tui_merge:`` block."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_merge.config.loading import load_config, parse_config


def run(args: argparse.Namespace) -> int:
    """Print the config with the ``tui_merge:`` block removed; comments and layout are kept."""
    loaded = load_config(Path(args.config))
    text = strip_block(loaded.text, "tui_merge")
    parse_config(text, args.config)
    print(text.rstrip("\n"))  # one line end, even when the file has none
    return 0


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
