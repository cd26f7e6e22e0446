"""The user cache folder: where tui-merge keeps what it can build or compute again (demo models, layer figures)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder() -> Path:
    """``TUI_MERGE_CACHE``, else ``$XDG_CACHE_HOME/tui-merge``, else ``~/.cache/tui-merge``."""
    if os.environ.get("TUI_MERGE_CACHE"):
        return Path(os.environ["TUI_MERGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tui-merge"
