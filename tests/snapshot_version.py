"""Which Textual the wizard's snapshot baselines were drawn with: they are compared only under that one."""

from __future__ import annotations

from pathlib import Path

import textual

VERSION_FILE = Path(__file__).parent / "snapshots_textual_version.txt"


def drawn_with_this_textual() -> bool:
    """True when the installed Textual is the one that drew the stored snapshots."""
    return VERSION_FILE.is_file() and VERSION_FILE.read_text().strip() == textual.__version__
