"""Every module of the package holds one concept: at most 400 lines, and a docstring whose first line says what it
is (a newcomer reads the folder listing and those lines before any code)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tui_merge"

MAX_LINES = 400


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_is_over_400_lines() -> None:
    long = {str(path.relative_to(PACKAGE)): count for path in modules()
            if (count := len(path.read_text().splitlines())) > MAX_LINES}  # fmt: skip

    assert not long, f"split these by concept: {long}"


def test_every_module_says_what_it_is_in_its_first_docstring_line() -> None:
    silent = [
        str(path.relative_to(PACKAGE))
        for path in modules()
        if not (ast.get_docstring(ast.parse(path.read_text())) or "").strip().splitlines()[:1]
    ]

    assert not silent, f"give these a docstring whose first line says what the module is: {silent}"
