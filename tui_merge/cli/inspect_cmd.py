"""``tui-merge inspect``: the models side by side and the findings about merging them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tui_merge.models.compat import CompatibilityReport, check_compatibility
from tui_merge.models.info import ModelInfo, load_model_info

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}

_ROWS: tuple[tuple[str, Callable[[ModelInfo], Any]], ...] = (
    ("model type", lambda m: m.facts.model_type or "unknown"),
    ("class", lambda m: ", ".join(m.facts.architectures) or "unknown"),
    ("layers", lambda m: m.depth),
    ("hidden size", lambda m: m.facts.hidden_size),
    ("attention heads", lambda m: m.facts.num_heads),
    ("key/value heads", lambda m: m.facts.num_kv_heads),
    ("vocabulary", lambda m: m.vocab_rows),
    ("tied embeddings", lambda m: "yes" if m.facts.tie_word_embeddings else "no"),
    ("dtype", lambda m: m.weight_dtype),
    ("context length", lambda m: m.facts.max_positions),
    ("rope theta", lambda m: m.facts.rope_theta),
    ("parameters", lambda m: human_count(m.parameter_count)),
    ("size", lambda m: human_bytes(m.total_bytes)),
    ("weights", lambda m: f"{m.checkpoint.format} x{len(m.checkpoint.files)}"),
    ("folder", lambda m: str(m.folder)),
)


def run(args: argparse.Namespace) -> int:
    """Inspect the models; exit 0 when mergeable, 1 when an error-level finding exists."""
    models = [load_model_info(argument) for argument in args.models]
    base = _choose_base(models, args.base)
    if base not in models:
        models.insert(0, base)
    report = check_compatibility(models, base=base, method=args.method)
    if args.json:
        json.dump(report_to_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, Console(highlight=False))
    return 0 if report.mergeable else 1


def _choose_base(models: list[ModelInfo], base: str | None) -> ModelInfo:
    if base is None:
        return models[0]
    for model in models:
        if base in (model.source.argument, model.label):
            return model
    return load_model_info(base)


def report_to_json(report: CompatibilityReport) -> dict[str, Any]:
    """The report as plain JSON data."""
    return {
        "base": report.base.label,
        "models": [model.summary() for model in report.models],
        "findings": [finding.to_dict() for finding in report.findings],
        "mergeable": report.mergeable,
    }


def print_report(report: CompatibilityReport, console: Console) -> None:
    """Render the side-by-side table, the findings and the verdict."""
    console.print(models_table(report))
    if len(report.models) > 1 or report.findings:
        console.print()
    if report.findings:
        console.print(findings_grid(report))
    if len(report.models) > 1:
        errors = sum(finding.severity == "error" for finding in report.findings)
        verdict = (
            Text("Mergeable.", style="bold green")
            if report.mergeable
            else Text(f"Not mergeable: {errors} error{'s' if errors != 1 else ''} above.", style="bold red")
        )
        console.print(Text.assemble("\n", verdict))


def findings_grid(report: CompatibilityReport) -> Table:
    """Severity in the left column, message and fixes on the right, wrapped under the message."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for finding in report.findings:
        body: list[RenderableType] = [Text(finding.message)]
        if finding.fixes:
            fixes = Table.grid(padding=(0, 1))
            fixes.add_column(no_wrap=True, style="bold")
            fixes.add_column()
            for fix in finding.fixes:
                fixes.add_row(f"  {fix.key}:", Text(fix.summary))
            body.append(fixes)
        grid.add_row(Text(finding.severity.upper(), style=SEVERITY_STYLES[finding.severity]), Group(*body))
    return grid


def models_table(report: CompatibilityReport) -> Table:
    """One column per model, one row per fact; values that differ from the base stand out."""
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2, 0, 0))
    table.add_column("")
    for model in report.models:
        title = f"{model.label} (base)" if model is report.base and len(report.models) > 1 else model.label
        table.add_column(Text(title), overflow="fold")
    for title, value in _ROWS:
        base_value = value(report.base)
        cells = [
            Text(str(value(model)), style="bold yellow" if title != "folder" and value(model) != base_value else "")
            for model in report.models
        ]
        table.add_row(Text(title, style="dim"), *cells)
    return table


def human_count(count: int) -> str:
    """12_345_678 -> '12.3M'."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def human_bytes(count: int) -> str:
    """Bytes in binary units, e.g. '13.5 GiB'."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
