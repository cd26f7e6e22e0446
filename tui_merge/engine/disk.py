"""Free space where an output folder will go, before that folder exists."""

from __future__ import annotations

import shutil
from pathlib import Path


def free_space(output: Path) -> tuple[Path, int]:
    """The nearest existing folder at or above ``output``'s parent, and the bytes free on its filesystem."""
    parent = output.resolve().parent
    while not parent.exists():
        parent = parent.parent
    return parent, shutil.disk_usage(parent).free
