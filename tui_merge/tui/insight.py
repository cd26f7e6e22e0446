"""The Layers step's read-only columns: what each fine-tune changed, and where fine-tunes agree.

One column per model other than the reference (``Δ chat``): three small
bars per layer, for attention, MLP and norms, each the model's relative
change from the reference (``models.changes``), scaled to the largest
change of that component in the table, so a column reads as the curve of
that component over depth. One column per pair of those models (``chat ~
code``): the cosine between their task vectors per component, green where
they moved the same way, red where they fight, taller the stronger. A row
outside the layers shows its one figure (embeddings and head under
``other``, the final norm under ``norm``). With room to spare (120
columns or more) columns are titled with the models' names and the
numbers follow the bars; at 80 columns they are titled by the models'
numbers on the Models step (``Δ2``, ``2~3``), and a line above the table
says which is which.
"""

from __future__ import annotations

from rich.text import Text

from tui_merge.models.changes import ChangeReport, stack_layer
from tui_merge.wizard.grid import GridRow

_LEVELS = "▁▂▃▄▅▆▇█"
_SHOWN = ("attention", "mlp", "norm")


def outside_component(row: GridRow) -> str:
    """Which figure a row outside the layers shows: ``norm`` for a norm, else ``other``."""
    return "norm" if row.outside is not None and row.outside.component == "norm" else "other"


def level(fraction: float) -> str:
    """A block one to eight eighths tall for 0..1 (nothing for exactly 0)."""
    if fraction <= 0:
        return " "
    return _LEVELS[min(len(_LEVELS) - 1, int(fraction * len(_LEVELS)))]


class Insight:
    """The read-only columns for one ``ChangeReport``, labelled with the wizard's names for the models."""

    def __init__(self, report: ChangeReport, labels: dict[str, str], wide: bool) -> None:
        """``labels``: the wizard's name for each model, in the Models step's order."""
        self.report = report
        self.labels = labels
        self.numbers = {model: str(number) for number, model in enumerate(labels, 1)}
        self.wide = wide
        """Numbers after the bars (the terminal has room)."""
        self.models = list(dict.fromkeys(item.model for item in report.changes))
        self.pairs = list(dict.fromkeys(item.models for item in report.pairs))
        self.largest = {
            component: max((item.relative_change or 0.0 for item in report.changes if item.component == component),
                           default=0.0)
            for component in (*_SHOWN, "other")
        }  # fmt: skip

    def headings(self) -> list[str]:
        """Column titles: ``Δ chat`` per model and ``chat ~ code`` per pair when wide, else ``Δ2`` and ``2~3``."""
        if self.wide:
            name = self.labels.get
            return [f"Δ {name(model, model)}" for model in self.models] + [
                f"{name(first, first)} ~ {name(second, second)}" for first, second in self.pairs
            ]
        number = self.numbers.get
        return [f"Δ{number(model, '?')}" for model in self.models] + [
            f"{number(first, '?')}~{number(second, '?')}" for first, second in self.pairs
        ]

    def widths(self, rows: list[GridRow]) -> list[int]:
        """Cells each column takes, its title or its widest figure."""
        cells = [self.cells(row) for row in rows]
        return [
            max(len(heading), *(row[index].cell_len for row in cells)) for index, heading in enumerate(self.headings())
        ]

    def legend(self) -> str:
        """One line on how to read the columns."""
        reference = self.labels.get(self.report.reference, self.report.reference)
        models = ""
        if not self.wide:
            numbered = [f"{self.numbers[model]} {self.labels[model]}" for model in self.models if model in self.labels]
            models = " · " + ", ".join(numbered)
        return f"Δ: change from {reference} (bars: attention, MLP, norms) · ~: agree (green) or oppose (red){models}"

    def cells(self, row: GridRow) -> list[Text]:
        """The row's figures, one cell per column."""
        return [self._change(model, row) for model in self.models] + [self._agreement(pair, row) for pair in self.pairs]

    def _components(self, row: GridRow) -> tuple[str, ...]:
        return _SHOWN if row.layer is not None else (outside_component(row),)

    @staticmethod
    def _layer(row: GridRow) -> int | str | None:
        """The figures' key for the row: another stack's layers are keyed by their prefix."""
        return stack_layer(row.stack.filter, row.layer) if row.stack is not None else row.layer

    def _change(self, model: str, row: GridRow) -> Text:
        cell = Text()
        numbers = []
        for component in self._components(row):
            value = self.report.change(model, self._layer(row), component)
            largest = self.largest[component]
            fraction = 0.0 if value is None or largest == 0 else value / largest
            cell.append(level(fraction), style="cyan")
            numbers.append("  –  " if value is None else f"{value:5.3f}")
        if self.wide:
            cell.append(" " + " ".join(numbers), style="dim")
        return cell

    def _agreement(self, pair: tuple[str, str], row: GridRow) -> Text:
        cell = Text()
        numbers = []
        for component in self._components(row):
            value = self.report.cosine(*pair, self._layer(row), component)
            if value is None:
                cell.append("·", style="dim")
                numbers.append("  –  ")
                continue
            cell.append(level(abs(value)), style="green" if value >= 0 else "red")
            numbers.append(f"{value:+.2f}")
        if self.wide:
            cell.append(" " + " ".join(numbers), style="dim")
        return cell
