"""What a row of the command table is: a command, its arguments, the handler that runs it."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: its flags or name, and its keywords."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """An argument of a command, spelled as for ``add_argument``."""
    return Arg(flags, options)


@dataclass(frozen=True)
class OneOf:
    """Arguments of which at most one may be given."""

    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Command:
    """One subcommand."""

    name: str
    handler: str
    """``module:function`` that runs it."""
    help: str
    """The line in ``tui-merge --help``."""
    description: str
    epilog: str
    args: tuple[Arg | OneOf, ...] = field(default_factory=tuple)
    more: str | None = None
    """``module:function`` that adds arguments of its own to the command's parser (a group of another tool's
    options), imported only when the parser is built."""


def paragraph(text: str) -> str:
    return textwrap.dedent(text).strip("\n")
