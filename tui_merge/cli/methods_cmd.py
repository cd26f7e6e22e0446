"""``tui-merge methods``: the registry as a table, or one method in detail."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui_merge.methods.registry import METHODS, get_method
from tui_merge.methods.spec import MethodSpec, ParamSpec

_BASE_TEXT = {"required": "required", "optional": "optional", "none": "not used"}


def run(args: argparse.Namespace) -> int:
    """List every method, or describe the one named."""
    console = Console(highlight=False)
    if args.name:
        describe(get_method(args.name), console)
        return 0
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    table.add_column("method", no_wrap=True)
    table.add_column("base", no_wrap=True)
    table.add_column("what it does")
    for method in METHODS:
        table.add_row(Text(method.name, style="bold"), _BASE_TEXT[method.base], Text(method.summary))
    console.print(table)
    console.print("\nDetails and parameters: tui-merge methods NAME")
    return 0


def describe(method: MethodSpec, console: Console) -> None:
    """One method: what it does, what it needs, every parameter."""
    console.print(Text(method.name, style="bold"), Text(f"  {method.summary}"))
    console.print(f"base model: {_BASE_TEXT[method.base]}; takes {method.count_text()}")
    if method.random:
        console.print("random: yes (seeded from tui_merge.seed, so a replay gives the same bytes)")
    if method.reference:
        console.print(f"reference: {method.reference}")
    if not method.params:
        console.print("parameters: none")
        return
    table = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    for column in ("parameter", "scope", "default", "range", "meaning"):
        table.add_column(column, no_wrap=column != "meaning")
    for spec in method.params:
        allowed = "true/false" if spec.kind == "bool" else spec.range_text()
        table.add_row(spec.name, _scope(spec), _default(spec), allowed, Text(spec.help))
    console.print(table)


def _scope(spec: ParamSpec) -> str:
    return "per model" if spec.scope == "model" else "global"


def _default(spec: ParamSpec) -> str:
    """The value a config that leaves the parameter out gets, and where new configs start when that differs."""
    if spec.kind == "bool":
        return "true" if spec.default else "false"
    if spec.kind == "choice":
        return str(spec.default)
    default = "required" if spec.required else f"{spec.default:g}"
    return default if spec.suggested is None else f"{default}; new configs {spec.suggested:g}"
