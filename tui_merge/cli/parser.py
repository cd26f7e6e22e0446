"""The argument parser, built from the command table (``cli.commands``)."""

from __future__ import annotations

import argparse
import importlib

from tui_merge import __version__
from tui_merge.cli.command_spec import OneOf
from tui_merge.cli.commands import COMMANDS
from tui_merge.cli.help_texts import DESCRIPTION, EXAMPLES


def build_parser() -> argparse.ArgumentParser:
    """The ``tui-merge`` parser with every command of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="tui-merge",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tui-merge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for item in command.args:
            if isinstance(item, OneOf):
                group = sub.add_mutually_exclusive_group()
                for one in item.args:
                    group.add_argument(*one.flags, **one.options)
            else:
                sub.add_argument(*item.flags, **item.options)
        if command.more:
            module, _, function = command.more.partition(":")
            getattr(importlib.import_module(module), function)(sub)
        sub.set_defaults(handler=command.handler)
    return parser
