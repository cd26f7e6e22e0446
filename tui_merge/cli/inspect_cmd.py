"""``tui-merge inspect``: the models side by side and the findings about merging them."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui_merge.compatibility.check import check_compatibility
from tui_merge.compatibility.findings import CompatibilityReport
from tui_merge.models.changes import COMPONENTS, ChangeReport, measure_changes
from tui_merge.models.info import ModelInfo, load_model_info
from tui_merge.report_view import findings_grid, models_table


def run(args: argparse.Namespace) -> int:
    """Inspect the models; exit 0 when mergeable, 1 when an error-level finding exists."""
    models = [load_model_info(argument) for argument in args.models]
    base = _choose_base(models, args.base)
    if base not in models:
        models.insert(0, base)
    report = check_compatibility(models, base=base, method=args.method)
    changes = _measure(models, base) if getattr(args, "layers", False) else None
    if args.json:
        data = report_to_json(report)
        if changes is not None:
            data.update(changes.to_json())
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console = Console(highlight=False)
        print_report(report, console)
        _say_hub_reads(models, console)
        if changes is not None:
            console.print()
            print_changes(changes, console)
    return 0 if report.mergeable else 1


def _say_hub_reads(models: list[ModelInfo], console: Console) -> None:
    """How much of each Hub model's weights was read by range, so a person sees that nothing was downloaded."""
    from tui_merge.units import human_bytes

    remote = [model for model in models if model.source.hub is not None and not model.downloaded]
    if remote:
        reads = ", ".join(f"{model.label} {human_bytes(model.source.hub.fetched)}" for model in remote)
        console.print(
            Text(f"Read from the Hub by range (headers, lineage probes), weights not downloaded: {reads}.", "dim")
        )


def _measure(models: list[ModelInfo], base: ModelInfo) -> ChangeReport | None:
    """The per-layer figures, with progress on stderr; None (said) when the shapes leave nothing to compare."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    named = [(model.source.argument, model) for model in models]
    reference = next(pair for pair in named if pair[1] is base)
    console = Console(stderr=True)
    columns = (TextColumn("measuring layer changes"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("measure", total=None)
        return measure_changes(
            named, reference, on_progress=lambda done, total: progress.update(task, completed=done, total=total)
        )


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


def print_changes(changes: ChangeReport, console: Console) -> None:
    """One table per model (its relative change from the reference), then one per pair of models (the
    cosine between their task vectors): a row per layer, the rows outside the layers first, a column per
    component, so each fits 80 columns."""
    models = list(dict.fromkeys(item.model for item in changes.changes))
    layers = list(dict.fromkeys(item.layer for item in changes.changes))
    for model in models:
        rows = [[_figure(changes.change(model, layer, component)) for component in COMPONENTS] for layer in layers]
        console.print(Text(f"Relative change of {model} from {changes.reference}", style="bold"))
        console.print(_layer_table(layers, rows))
    pairs = list(dict.fromkeys(item.models for item in changes.pairs))
    if pairs:
        console.print(
            Text("Cosines between task vectors: 1 the same direction, 0 unrelated, below 0 opposed.", style="dim")
        )
    for first, second in pairs:
        rows = [[_figure(changes.cosine(first, second, layer, component), signed=True) for component in COMPONENTS]
                for layer in layers]  # fmt: skip
        console.print(Text(f"Cosine between the task vectors of {first} and {second}", style="bold"))
        console.print(_layer_table(layers, rows))


def _layer_table(layers: list[int | str | None], rows: list[list[str]]) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0))
    table.add_column("layer")
    for component in COMPONENTS:
        table.add_column(component, justify="right")
    for layer, row in zip(layers, rows):
        table.add_row("outside" if layer is None else str(layer), *row)
    return table


def _figure(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.4f}"


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
