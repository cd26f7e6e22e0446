"""Every command's --help fits an 80-column terminal: no line is cut or wrapped by the terminal."""

from __future__ import annotations

import pytest

from tui_merge.cli.parser import COMMANDS, build_parser


@pytest.mark.parametrize("command", [None, *(command.name for command in COMMANDS)])
def test_help_fits_80_columns(command, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps its own text to the terminal's width
    parser = build_parser()
    if command is not None:
        parser = next(action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction").choices[
            command
        ]

    text = parser.format_help()

    too_long = [line for line in text.splitlines() if len(line) > 80]
    assert too_long == [], f"tui-merge {command or ''} --help has lines over 80 columns"
