"""Command line entry point: parse, dispatch to one command module, turn errors into exit codes.

Command modules are imported only when their command runs, so ``--help`` and
argument errors never pay for importing torch, transformers or textual.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import suppress

from tui_merge.cli.parser import build_parser
from tui_merge.errors import TuiMergeError


def main(argv: list[str] | None = None) -> int:
    """Run the ``tui-merge`` command line and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        if not sys.stdin.isatty() or not sys.stdout.isatty():
            parser.print_help()
            return 2
        args.handler = "tui_merge.cli.wizard_cmd:run"
        from tui_merge.plain.prompts import dumb_terminal

        if dumb_terminal():
            _say("tui-merge: this terminal (TERM=dumb or unknown) cannot draw the full-screen wizard; "
                 "asking one question at a time instead (tui-merge plain).")  # fmt: skip
            args.handler = "tui_merge.cli.plain_cmd:run"
    module_name, _, function_name = args.handler.partition(":")
    command = getattr(importlib.import_module(module_name), function_name)
    try:
        return command(args)
    except TuiMergeError as error:
        _say(f"tui-merge: error: {error.message}")
        return error.exit_code
    except KeyboardInterrupt:
        _say("tui-merge: interrupted.")
        return 130


def _say(text: str) -> None:
    """Print to stderr, unless the terminal is gone (a closed SSH session): the exit status still tells."""
    with suppress(OSError):
        print(text, file=sys.stderr, flush=True)
