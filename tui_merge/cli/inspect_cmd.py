"""``tui-merge inspect``: the models side by side and the findings about merging them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

from tui_merge.models.compat import CompatibilityReport, check_compatibility
from tui_merge.models.info import ModelInfo, load_model_info
from tui_merge.report_view import findings_grid, models_table


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
