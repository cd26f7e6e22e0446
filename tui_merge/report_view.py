"""Rich renderables of a compatibility report: the side-by-side table and the findings.

``tui-merge inspect`` prints them; the wizard's analysis step shows the same objects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from tui_merge.compatibility.findings import CompatibilityReport
from tui_merge.models.info import ModelInfo, distinct_labels
from tui_merge.units import human_bytes, human_count

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}

_ROWS: tuple[tuple[str, Callable[[ModelInfo], Any]], ...] = (
    ("model type", lambda m: m.facts.model_type or "unknown"),
    ("class", lambda m: ", ".join(m.facts.architectures) or "unknown"),
    ("layers", lambda m: m.depth),
    ("other stacks", lambda m: _other_stacks(m)),
    ("hidden size", lambda m: m.facts.hidden_size),
    ("attention heads", lambda m: m.facts.num_heads),
    ("key/value heads", lambda m: m.facts.num_kv_heads),
    ("vocabulary", lambda m: m.vocab_rows),
    ("tied embeddings", lambda m: "yes" if m.facts.tie_word_embeddings else "no"),
    ("dtype", lambda m: _dtype(m)),
    ("context length", lambda m: m.facts.max_positions),
    ("rope theta", lambda m: m.facts.rope_theta),
    ("parameters", lambda m: human_count(m.parameter_count)),
    ("size", lambda m: human_bytes(m.total_bytes)),
    ("weights", lambda m: f"{m.checkpoint.format} x{len(m.checkpoint.files)}"),
    ("adapter", lambda m: m.adapter_summary),
    ("folder", lambda m: _where(m)),
)


def _where(model: ModelInfo) -> str | TailOf:
    """The folder as given when relative; an absolute one (typed with ``~`` or not) with the home folder as
    ``~``, cut from the left when narrow; a hub id's snapshot the same way; ``Hub @commit`` while its weights
    are on the Hub."""
    if model.source.hub is not None and not model.downloaded:
        return f"Hub @{model.source.hub.commit[:12]}"
    typed = model.source.argument.partition("+")[0]
    if not model.source.from_cache and not Path(typed).expanduser().is_absolute():
        return typed
    folder = str(model.folder) if model.source.from_cache else os.path.normpath(Path(typed).expanduser().absolute())
    home = str(Path.home())
    if folder == home or folder.startswith(home + "/"):
        folder = "~" + folder[len(home) :]
    return TailOf(folder)


class TailOf:
    """A path that a narrow column cuts from the left (``…/demo/demo-base``), keeping the part that tells two
    folders apart, where rich would cut the end they share."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(min(len(self.text), 12), len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        yield Text(self.text if len(self.text) <= width else "…" + self.text[len(self.text) - width + 1 :])


def _other_stacks(model: ModelInfo) -> str | None:
    """The stacks beside the main one (a vision tower's ``visual.blocks x32``, t5's encoder), or None."""
    others = [f"{prefix} x{depth}" for prefix, depth in model.stack_depths.items() if prefix != model.block_prefix]
    return ", ".join(others) or None


def findings_grid(report: CompatibilityReport, *, errors: bool = True) -> Table:
    """Severity in the left column, message and fixes on the right, wrapped under the message; without the
    errors when ``errors`` is False (a screen that shows them in full above)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for finding in report.findings:
        if not errors and finding.severity == "error":
            continue
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
    for model, label in zip(report.models, distinct_labels(report.models)):
        title = f"{label} (base)" if model is report.base and len(report.models) > 1 else label
        table.add_column(Text(title), overflow="ellipsis")
    for title, value in _ROWS:
        if all(value(model) is None for model in report.models):
            continue  # a fact no model has (rope theta of an encoder) is left out, not shown as None
        base_value = value(report.base)
        cells = [
            value(model) if isinstance(value(model), TailOf) else
            Text("-" if value(model) is None else str(value(model)),
                 style="bold yellow" if title != "folder" and value(model) != base_value else "")
            for model in report.models
        ]  # fmt: skip
        table.add_row(Text(title, style="dim"), *cells)
    return table


def _dtype(model: ModelInfo) -> str | None:
    """The weights' dtype, with a quantization said: ``fp8 blocks 128x128 -> bfloat16`` or ``gptq``."""
    quantization = model.quantization
    if quantization is None:
        return model.weight_dtype
    if quantization.readable:
        rows, columns = quantization.block
        return f"fp8 blocks {rows}x{columns} -> {model.weight_dtype}"
    return f"{quantization.method} (quantized)"
