"""Command line entry point: parse, dispatch to one command module, turn errors into exit codes.

Command modules are imported only when their command runs, so ``--help`` and
argument errors never pay for importing torch, transformers or textual.

Under an address-space limit (``ulimit -v``) too small for torch, imports and
allocations fail in many ways (an ImportError from a shared library, a
MemoryError, stranger errors from half-initialised libraries); when the limit
is below ``NEEDED_ADDRESS_SPACE``, any such failure is reported as that one
sentence instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
import resource  # imported at start: with the address space used up, even this import could fail
import shutil
import sys
import textwrap
from contextlib import suppress

from tui_merge.cli.parser import build_parser
from tui_merge.errors import TuiMergeError

NEEDED_ADDRESS_SPACE = 1 << 30
"""Address space torch, transformers and a small merge take together (measured: about 800 MiB), rounded up."""


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
    try:
        command = getattr(importlib.import_module(module_name), function_name)
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
    except Exception as error:  # noqa: BLE001 - re-raised unless a small address-space limit explains it
        limit = address_space_limit()
        if not isinstance(error, MemoryError) and (limit is None or limit >= NEEDED_ADDRESS_SPACE):
            raise
        _say(f"tui-merge: error: {short_of_memory(limit)}")
        return 1 if limit is None else 2  # a limit too small is the caller's setting; running out is not


def address_space_limit() -> int | None:
    """The process's address-space limit in bytes (``ulimit -v``), or None when there is none."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def short_of_memory(limit: int | None) -> str:
    """The sentence for a process that ran out of memory, under ``limit`` (bytes) or none."""
    need = NEEDED_ADDRESS_SPACE >> 20
    if limit is None:
        return (
            "tui-merge ran out of memory; close other programs or use a machine with more memory, or lower "
            "tui_merge.shard_size and merge on the CPU."
        )
    return (
        f"tui-merge needs at least {need} MiB of address space for torch and its libraries, plus the merge's "
        f"working memory, but this shell allows {limit >> 20} MiB (ulimit -v {limit >> 10}); raise it "
        f"(ulimit -v unlimited, or at least ulimit -v {NEEDED_ADDRESS_SPACE >> 10}) and run again."
    )


def _say(text: str) -> None:
    """Print to stderr, unless the terminal is gone (a closed SSH session): the exit status still tells. On a
    terminal the text is wrapped at words to its width (a terminal breaks a long line inside words); a log or a
    pipe gets one line, which grep finds whole."""
    with suppress(OSError):
        if sys.stderr.isatty():
            width = shutil.get_terminal_size().columns
            text = "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                             for line in text.splitlines())  # fmt: skip
        print(text, file=sys.stderr, flush=True)
