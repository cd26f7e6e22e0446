"""The layer table's data and edits, without any UI: rows are tensor groups, columns per-layer quantities.

Rows are the groups outside the layers (embeddings, final norm, head) and
then one row per layer; columns are the quantity a layer table edits: ``t``
for slerp-like methods, else each model's weight. Every edit is undoable.
A column turns into a config value (filter rows plus one anchor per layer)
and back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tui_merge.config.rendering import OutsideRow, PerLayer

NUDGE = 0.05
FINE_NUDGE = 0.01


@dataclass(frozen=True)
class GridRow:
    """One row: a group outside the layers, or one layer."""

    label: str
    outside: OutsideRow | None = None
    layer: int | None = None


@dataclass(frozen=True)
class GridColumn:
    """One editable quantity, with its allowed range."""

    key: str
    """``t``, or the model name whose weight the column holds."""
    label: str
    minimum: float | None = None
    maximum: float | None = None

    def clamp(self, value: float) -> float:
        """The value limited to the column's range."""
        if self.minimum is not None:
            value = max(self.minimum, value)
        if self.maximum is not None:
            value = min(self.maximum, value)
        return round(value, 6)


class LayerGrid:
    """Values by row and column, with undo and redo."""

    def __init__(self, rows: list[GridRow], columns: list[GridColumn], values: list[list[float]]) -> None:
        self.rows = rows
        self.columns = columns
        self.values = values
        self._undo: list[list[list[float]]] = []
        self._redo: list[list[list[float]]] = []

    @classmethod
    def filled(
        cls, outside: list[OutsideRow], depth: int, columns: list[GridColumn], defaults: list[float]
    ) -> LayerGrid:
        """A grid with every row of a column at that column's default."""
        rows = [GridRow(row.label, outside=row) for row in outside]
        rows += [GridRow(f"layer {index}", layer=index) for index in range(depth)]
        return cls(rows, columns, [list(defaults) for _ in rows])

    def value(self, row: int, column: int) -> float:
        """One cell."""
        return self.values[row][column]

    def set(self, row: int, column: int, value: float) -> None:
        """Set one cell (clamped to the column's range)."""
        self._remember()
        self.values[row][column] = self.columns[column].clamp(value)

    def nudge(self, row: int, column: int, delta: float) -> None:
        """Add ``delta`` to one cell."""
        self.set(row, column, self.values[row][column] + delta)

    def fill_gradient(self, column: int, start: int, end: int) -> None:
        """Interpolate linearly between the values at rows ``start`` and ``end`` (inclusive) in one column."""
        low, high = sorted((start, end))
        if high - low < 2:
            return
        self._remember()
        first, last = self.values[low][column], self.values[high][column]
        for row in range(low + 1, high):
            fraction = (row - low) / (high - low)
            self.values[row][column] = self.columns[column].clamp(first + (last - first) * fraction)

    def copy_row(self, row: int) -> list[float]:
        """The values of a row, for pasting."""
        return list(self.values[row])

    def paste_row(self, row: int, values: list[float]) -> None:
        """Replace a row with copied values."""
        self._remember()
        self.values[row] = [column.clamp(value) for column, value in zip(self.columns, values)]

    def take_from(self, row: int, model: int) -> None:
        """Make a row come wholly from one model: ``t`` 0/1, or weight 1 for that model and 0 for the others."""
        self._remember()
        if len(self.columns) == 1 and self.columns[0].key == "t":
            self.values[row] = [self.columns[0].clamp(float(model > 0))]
        else:
            self.values[row] = [column.clamp(float(index == model)) for index, column in enumerate(self.columns)]

    def undo(self) -> bool:
        """Go back one edit; False when there is none."""
        if not self._undo:
            return False
        self._redo.append([list(row) for row in self.values])
        self.values = self._undo.pop()
        return True

    def redo(self) -> bool:
        """Redo one undone edit; False when there is none."""
        if not self._redo:
            return False
        self._undo.append([list(row) for row in self.values])
        self.values = self._redo.pop()
        return True

    def profile(self, column: int) -> list[float]:
        """The column's values over the layers, for a sparkline."""
        return [self.values[index][column] for index, row in enumerate(self.rows) if row.layer is not None]

    def per_layer(self, column: int) -> PerLayer:
        """The column as a config value."""
        outside = [(row.outside, self.values[index][column]) for index, row in enumerate(self.rows) if row.outside]
        return PerLayer(outside, self.profile(column))

    def load_column(self, column: int, value_of: Callable[[GridRow], float | None]) -> None:
        """Fill a column from a function of the row (None keeps the current value); not undoable."""
        for index, row in enumerate(self.rows):
            value = value_of(row)
            if value is not None:
                self.values[index][column] = float(value)

    def _remember(self) -> None:
        self._undo.append([list(row) for row in self.values])
        self._redo.clear()
