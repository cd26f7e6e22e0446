"""The layer table's data and edits, without any UI: rows are tensor groups, columns per-layer quantities.

Rows are the groups outside the layers (embeddings, final norm, head), then
one row per layer of the main stack, then one section per other stack (a
vision tower's layers, labelled ``vision tower 0``...); columns are the quantity a layer table edits: ``t``
for slerp-like methods, else each model's weight. Every edit is undoable.
A column turns into a config value (filter rows plus one anchor per layer)
and back.

Split by component, a quantity has three columns: its attention, its MLP,
and the rest of each layer (norms), which also holds the rows outside the
layers and the other stacks' rows; the attention and MLP cells of those rows
do not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tui_merge.config.rendering import ComponentFilter, OutsideRow, PerLayer, StackRow
from tui_merge.methods.spec import ParamSpec

NUDGE = 0.05
FINE_NUDGE = 0.01


@dataclass(frozen=True)
class GridRow:
    """One row: a group outside the layers, or one layer."""

    label: str
    outside: OutsideRow | None = None
    layer: int | None = None
    stack: StackRow | None = None
    """The stack beside the main one that the layer belongs to; None for the main stack's layers."""

    @property
    def main_layer(self) -> bool:
        """True for a layer of the main stack."""
        return self.layer is not None and self.stack is None


@dataclass(frozen=True)
class GridColumn:
    """One editable quantity, with its allowed range."""

    key: str
    """``t``, or the model name whose weight the column holds."""
    label: str
    spec: ParamSpec | None = None
    """The parameter the column edits; its range bounds the values."""
    part: ComponentFilter | None = None
    """The component the column is split to; None for the whole layer (or its rest when split)."""

    def clamp(self, value: float) -> float:
        """The value limited to the column's range."""
        return round(self.spec.clamp(value) if self.spec else value, 6)


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
        cls,
        outside: list[OutsideRow],
        depth: int,
        columns: list[GridColumn],
        defaults: list[float],
        stacks: tuple[StackRow, ...] | list[StackRow] = (),
    ) -> LayerGrid:
        """A grid with every row of a column at that column's default, its rows in the order the model runs:
        the embeddings (and any other row outside the layers), each other stack (a vision tower, an encoder)
        between its own embeddings and norms, the projector, the layers, then the final norm and the head."""
        towers = tuple(stack.label for stack in stacks)

        def place(row: OutsideRow) -> int:
            if row.label.startswith("projector"):
                return 4
            if towers and row.label.startswith(towers):
                return 3 if row.component == "norm" else 1
            return {"norm": 6, "head": 7}.get(row.component, 0)

        placed = [(place(row), GridRow(row.label, outside=row)) for row in outside]
        placed += [(2, GridRow(f"{stack.label} {index}", layer=index, stack=stack)) for stack in stacks
                   for index in range(stack.depth)]  # fmt: skip
        placed += [(5, GridRow(f"layer {index}", layer=index)) for index in range(depth)]
        rows = [row for _, row in sorted(placed, key=lambda pair: pair[0])]  # stable: each group keeps its order
        return cls(rows, columns, [list(defaults) for _ in rows])

    @property
    def keys(self) -> list[str]:
        """The quantities, in column order, each once."""
        return list(dict.fromkeys(column.key for column in self.columns))

    @property
    def split(self) -> bool:
        """True when the columns are split by component."""
        return any(column.part for column in self.columns)

    def heading(self, column: int) -> str:
        """The column's title: its quantity, and its component when split."""
        spec = self.columns[column]
        if not self.split:
            return spec.label
        return f"{spec.label} {spec.part.part if spec.part else 'rest'}"

    def exists(self, row: int, column: int) -> bool:
        """False for a component cell of a row outside the main stack's layers."""
        return self.rows[row].main_layer or self.columns[column].part is None

    def value(self, row: int, column: int) -> float:
        """One cell."""
        return self.values[row][column]

    def set(self, row: int, column: int, value: float) -> None:
        """Set one cell (clamped to the column's range); a cell that does not exist stays as it is."""
        if not self.exists(row, column):
            return
        self._remember()
        self.values[row][column] = self.columns[column].clamp(value)

    def set_range(self, column: int, start: int, end: int, value: float) -> None:
        """Set rows ``start`` to ``end`` (inclusive, either order) of one column to ``value``, as one edit."""
        low, high = sorted((start, end))
        self._remember()
        for row in range(low, high + 1):
            if self.exists(row, column):
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
            if not self.exists(row, column):
                continue
            fraction = (row - low) / (high - low)
            self.values[row][column] = self.columns[column].clamp(first + (last - first) * fraction)

    def copy_row(self, row: int) -> list[float]:
        """The values of a row, for pasting."""
        return list(self.values[row])

    def paste_row(self, row: int, values: list[float]) -> None:
        """Replace a row with copied values."""
        self._remember()
        self.values[row] = [
            column.clamp(value) if self.exists(row, index) else self.values[row][index]
            for index, (column, value) in enumerate(zip(self.columns, values))
        ]

    def take_from(self, row: int, model: int) -> None:
        """Make a row come wholly from one model: ``t`` 0/1, or weight 1 for that model and 0 for the others."""
        self._remember()
        keys = self.keys
        for index, column in enumerate(self.columns):
            wanted = float(model > 0) if keys == ["t"] else float(column.key == keys[min(model, len(keys) - 1)])
            self.values[row][index] = column.clamp(wanted)

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
        """The column's values over the main stack's layers, for a sparkline."""
        return [self.values[index][column] for index, row in enumerate(self.rows) if row.main_layer]

    def per_layer(self, key: str) -> PerLayer:
        """A quantity's columns as a config value."""
        whole = self._whole(key)
        outside = [(row.outside, self.values[index][whole]) for index, row in enumerate(self.rows) if row.outside]
        parts = [
            (column.part, self.profile(index))
            for index, column in enumerate(self.columns)
            if column.key == key and column.part is not None
        ]
        stacks = list(dict.fromkeys(row.stack for row in self.rows if row.stack is not None))
        per_stack = [
            (stack, [self.values[index][whole] for index, row in enumerate(self.rows) if row.stack == stack])
            for stack in stacks
        ]
        return PerLayer(outside, self.profile(whole), parts, per_stack)

    def with_parts(self, parts: list[ComponentFilter]) -> LayerGrid:
        """The grid split into ``parts`` plus the rest (or joined again when ``parts`` is empty).

        Splitting starts every component at the layer's value; joining keeps the rest column.
        """
        columns: list[GridColumn] = []
        sources: list[int] = []
        for key in self.keys:
            whole = self._whole(key)
            base = self.columns[whole]
            for part in parts:
                columns.append(GridColumn(key, base.label, base.spec, part))
                sources.append(whole)
            columns.append(GridColumn(key, base.label, base.spec))
            sources.append(whole)
        kept = {(column.key, column.part): index for index, column in enumerate(self.columns)}
        for position, column in enumerate(columns):
            sources[position] = kept.get((column.key, column.part), sources[position])
        values = [[row[source] for source in sources] for row in self.values]
        return LayerGrid(self.rows, columns, values)

    def load_column(self, column: int, value_of: Callable[[GridRow], float | None]) -> None:
        """Fill a column from a function of the row (None keeps the current value); not undoable."""
        for index, row in enumerate(self.rows):
            value = value_of(row)
            if value is not None:
                self.values[index][column] = float(value)

    def _whole(self, key: str) -> int:
        """The column of ``key`` that covers the whole layer, or its rest when split."""
        return next(index for index, column in enumerate(self.columns) if column.key == key and column.part is None)

    def _remember(self) -> None:
        self._undo.append([list(row) for row in self.values])
        self._redo.clear()
