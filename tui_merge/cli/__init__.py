"""Command line entry point: parse, dispatch to one command module, turn errors into exit codes.

Command modules are imported only when their command runs, so ``--help`` and
argument errors never pay for importing torch, transformers or textual.
"""

from __future__ import annotations

import importlib
import os
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
        status = command(args)
        sys.stdout.flush()  # a reader that has gone is found here, not in the interpreter's last flush
        return status
    except TuiMergeError as error:
        _say(f"tui-merge: error: {error.message}")
        return error.exit_code
    except KeyboardInterrupt:
        _say("tui-merge: interrupted.")
        return 130
    except BrokenPipeError:
        # The reader went away (``tui-merge verify OUT | head``): stop quietly, as tools killed by SIGPIPE do,
        # with stdout pointed at /dev/null so the interpreter's last flush does not complain either.
        with suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _say(text: str) -> None:
    """Print to stderr, unless the terminal is gone (a closed SSH session): the exit status still tells."""
    with suppress(OSError):
        print(text, file=sys.stderr, flush=True)
