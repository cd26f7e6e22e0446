"""Every command's --help fits an 80-column terminal: no line is cut or wrapped by the terminal."""

from __future__ import annotations

import pytest

from tui_merge.cli.commands import COMMANDS
from tui_merge.cli.parser import build_parser


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


def test_an_error_on_a_terminal_wraps_at_words_and_in_a_log_stays_one_line(monkeypatch, tmp_path) -> None:
    import io
    import os

    from tui_merge.cli import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.chdir(tmp_path)
    (tmp_path / "merge.yaml").write_text("merge_methd: linear\nmodels: [{model: a}]\n")  # a sentence over 80
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=None: os.terminal_size((80, 24)))
    for stream, wrapped in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        assert main(["run", "merge.yaml", "--dry-run"]) == 2
        text = stream.getvalue()
        lines = text.splitlines()
        assert " ".join(lines).split() == text.split()  # no word was cut
        assert (len(lines) > 1 and all(len(line) <= 80 for line in lines)) if wrapped else len(lines) == 1
