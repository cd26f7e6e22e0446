"""The layer table: a ``DataTable`` that shows a ``LayerGrid`` and owns the keys that edit it.

The grid (``wizard/grid.py``) holds the values, undo and the edit rules;
this widget draws it and turns keys into grid edits. It tells its screen
what happened with typed messages (the grid itself is the wizard's state,
so no edit needs copying back): ``EditRequested`` when a value is to be
typed, ``SplitRequested`` for ``s`` (splitting needs the wizard's state),
and ``Said`` for a line of feedback: every key says what it did, so the
status never shows an earlier key's words. With a row marked (``m``), a
typed value applies to every row from the mark to the cursor; a fill or a
typed range clears the mark.

The table runs its keys as they arrive, and the keys that come after it
asked for the editor (typed ahead: ``e0.4`` and enter in one burst over SSH)
go to the editor, not to the table, where 0, 1, + and - would edit values
(``key_order``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from tui_merge.tui.bars import bar
from tui_merge.tui.fields import TextField
from tui_merge.tui.insight import Insight
from tui_merge.tui.key_order import TypeAhead, run_own_binding
from tui_merge.wizard.grid import FINE_NUDGE, NUDGE, LayerGrid


class LayerTable(DataTable):
    """One row per layer (and per group of tensors outside the layers), one column per edited quantity."""

    DEFAULT_CSS = """
    LayerTable {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("plus,equals_sign", "nudge(1)", "+0.05", tooltip="add 0.05 to the cell", show=False),
        Binding("minus,underscore", "nudge(-1)", "-0.05", tooltip="take 0.05 from the cell", show=False),
        Binding("right_square_bracket", "fine(1)", "+0.01", tooltip="add 0.01 to the cell", show=False),
        Binding("left_square_bracket", "fine(-1)", "-0.01", tooltip="take 0.01 from the cell", show=False),
        Binding("e", "edit", "type", tooltip="type the cell's value (enter does too)", show=False, id="edit"),
        Binding("m", "mark", "mark", tooltip="mark the row where a gradient starts", show=False, id="mark"),
        Binding("g", "gradient", "fill", tooltip="fill a straight line from the mark to the cursor in this column",
                show=False, id="gradient"),
        Binding("c", "copy_row", "copy", tooltip="copy the row's values", show=False, id="copy"),
        Binding("v", "paste_row", "paste", tooltip="paste the copied values into the row", show=False, id="paste"),
        Binding("u", "undo", "undo", tooltip="undo the last edit", show=False, id="undo"),
        Binding("ctrl+r", "redo", "redo", tooltip="redo what was undone", show=False, id="redo"),
        Binding("0", "take(0)", "from 1st", tooltip="take the whole layer from the first model", show=False,
                id="take-first"),
        Binding("1", "take(1)", "from 2nd", tooltip="take the whole layer from the second model", show=False,
                id="take-second"),
        Binding("s", "split", "split", tooltip="split the values into attention, MLP and the rest; s again joins",
                id="split"),
    ]  # fmt: skip

    KEY_LEGEND: tuple[tuple[str, str, tuple[str, ...]], ...] = (
        ("e", "type", ("edit",)),
        ("+-", "±.05", ("nudge(1)", "nudge(-1)")),
        ("][", "±.01", ("fine(1)", "fine(-1)")),
        ("0 1", "whole layer", ("take(0)", "take(1)")),
        ("m g", "gradient", ("mark", "gradient")),
        ("c v", "copy", ("copy_row", "paste_row")),
        ("u ^r", "undo", ("undo", "redo")),
    )
    """The editing keys as the line under the table shows them (keys, word, the actions they run): the footer has
    room for the step's keys only, so the table's own are said here, each in a word; F1 tells them in full."""

    @classmethod
    def key_legend(cls) -> Text:
        """The editing keys in one line of at most 80 columns, keys in bold."""
        legend = Text()
        for index, (keys, word, _) in enumerate(cls.KEY_LEGEND):
            if index:
                legend.append("  ")
            legend.append(keys, style="bold")
            legend.append(f" {word}")
        return legend

    @dataclass
    class EditRequested(Message):
        """The person wants to type the value of a cell."""

        row: int
        column: int
        value: float

    @dataclass
    class SplitRequested(Message):
        """The person pressed ``s``: split the columns by component, or join them."""

    @dataclass
    class Said(Message):
        """A line of feedback for the status bar."""

        text: str
        error: bool = False

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="cell", zebra_stripes=True)
        self.grid: LayerGrid | None = None
        """The values shown; None until ``show`` is called."""
        self.mark: int | None = None
        """The row marked with ``m``, where a gradient fill starts."""
        self.clipboard: list[float] | None = None
        """The row copied with ``c``."""
        self.copied_from = ""
        """The label of the row copied with ``c``."""
        self.bar_width = 6
        """Cells of each value's bar, set from the terminal's width when the grid is shown."""
        self.insight: Insight | None = None
        """Read-only columns of what each model changed, once measured."""
        self.type_ahead = TypeAhead(self)
        """Keys that reach the table once it asked for the editor: held, then passed to the editor."""

    def show(self, grid: LayerGrid, insight: Insight | None = None) -> None:
        """Draw ``grid`` (new columns after a split) and the ``insight`` columns after it, keeping the
        cursor and the mark where they were."""
        row, column = self.cursor_row, max(self.cursor_column, 1)
        if self.grid is None or len(self.grid.rows) != len(grid.rows):
            self.mark = None
        self.grid = grid
        self.insight = insight or self.insight
        spare = sum(width + 2 for width in self.insight.widths(grid.rows)) if self.insight else 0
        self.bar_width = self._bar_width(len(grid.columns), spare)
        self._bar_style = self.app.current_theme.accent or "yellow"  # not the cursor's colour
        self.clear(columns=True)
        self.add_column("row", key="row")
        self.header_height = 2 if grid.split else 1
        for index, quantity in enumerate(grid.columns):
            heading = (
                grid.heading(index)
                if not grid.split
                else f"{quantity.label}\n{quantity.part.part if quantity.part else 'rest'}"
            )
            self.add_column(heading, key=f"c{index}")
        headings = self.insight.headings() if self.insight else []
        for index, heading in enumerate(headings):
            self.add_column(Text(heading, style="italic"), key=f"i{index}")
        for index, grid_row in enumerate(grid.rows):
            cells = [self._cell(index, column) for column in range(len(grid.columns))]
            figures = self.insight.cells(grid_row) if self.insight else []
            self.add_row(self._label(index), *cells, *figures, key=f"r{index}")
        self.move_cursor(row=row, column=min(column, len(grid.columns)))

    def _bar_width(self, columns: int, taken: int = 0) -> int:
        """Cells per value bar: what the terminal's width leaves each column after ``taken``, between 3 and 12."""
        label, number, padding = 14, 5, 3
        spare = (self.app.size.width - label - 2 - taken) // max(columns, 1) - number - padding
        return max(3, min(12, spare))

    @property
    def position(self) -> tuple[int, int] | None:
        """The grid row and column under the cursor; None on a read-only column of figures."""
        if self.grid is None or self.cursor_column > len(self.grid.columns):
            return None
        return self.cursor_row, max(self.cursor_column - 1, 0)

    def set_value(self, value: float) -> None:
        """Set the cell under the cursor to a value typed in the editor; with a row marked, every row from the
        mark to the cursor in that column (the mark is then cleared)."""
        if self.mark is None or self.position is None:
            self._edit(lambda row, column: self.grid.set(row, column, value), self._cell_said)
            return
        start = self.mark
        self.mark = None
        self._edit(
            lambda row, column: self.grid.set_range(column, start, row, value),
            lambda row, column: (
                f"{self._column_name(column)} set to {self.grid.value(row, column):.2f} from "
                f"{self.grid.rows[start].label} to {self.grid.rows[row].label}"
            ),
        )

    def _cell(self, row: int, column: int) -> Text:
        """The value and a bar on the parameter's range (0..1 unless the parameter says otherwise)."""
        if not self.grid.exists(row, column):
            return Text("·".center(5 + 1 + self.bar_width), style="dim")
        value = self.grid.value(row, column)
        spec = self.grid.columns[column].spec
        low = spec.minimum if spec and spec.minimum is not None else 0.0
        high = spec.maximum if spec and spec.maximum is not None else 1.0
        return Text.assemble(f"{value:5.2f} ", (bar(value, low, high, self.bar_width), self._bar_style))

    def _label(self, row: int) -> Text:
        marked = row == self.mark
        return Text(("▸ " if marked else "") + self.grid.rows[row].label, style="bold" if marked else "")

    def _redraw(self) -> None:
        for index in range(len(self.grid.rows)):
            self.update_cell(f"r{index}", "row", self._label(index), update_width=True)
            for column in range(len(self.grid.columns)):
                self.update_cell(f"r{index}", f"c{column}", self._cell(index, column))

    def _edit(self, change, said) -> None:
        """Apply ``change(row, column)`` at the cursor, redraw, and say ``said(row, column)`` (read after it)."""
        position = self.position
        if position is None:
            if self.grid is not None:
                self.post_message(self.Said("That column shows what a model changed; move left to edit a value."))
            return
        change(*position)
        self._redraw()
        self.post_message(self.Said(said(*position)))

    def _column_name(self, column: int) -> str:
        return self.grid.heading(column)

    def _cell_said(self, row: int, column: int) -> str:
        """``layer 2 t: 0.55``, or why the cell has no value."""
        if not self.grid.exists(row, column):
            return "Attention and MLP columns have no value outside the layers; the rest column sets it."
        return f"{self.grid.rows[row].label} {self._column_name(column)}: {self.grid.value(row, column):.2f}"

    def action_nudge(self, direction: int) -> None:
        self._edit(lambda row, column: self.grid.nudge(row, column, direction * NUDGE), self._cell_said)

    def action_fine(self, direction: int) -> None:
        self._edit(lambda row, column: self.grid.nudge(row, column, direction * FINE_NUDGE), self._cell_said)

    def action_mark(self) -> None:
        if self.position is None:
            return
        self.mark = self.position[0]
        self._redraw()
        self.post_message(
            self.Said(
                f"marked {self.grid.rows[self.mark].label}; move, then g fills a gradient or e types a value "
                "for the rows between"
            )  # fmt: skip
        )

    def action_gradient(self) -> None:
        if self.mark is None:
            self.post_message(self.Said("Mark a row with m first.", error=True))
            return
        start = self.mark
        self.mark = None
        self._edit(
            lambda row, column: self.grid.fill_gradient(column, start, row),
            lambda row, column: (
                f"{self._column_name(column)} filled from {self.grid.rows[start].label} "
                f"({self.grid.value(start, column):.2f}) to {self.grid.rows[row].label} "
                f"({self.grid.value(row, column):.2f})"
            ),
        )

    def action_copy_row(self) -> None:
        if self.position is None:
            return
        self.clipboard = self.grid.copy_row(self.position[0])
        self.copied_from = self.grid.rows[self.position[0]].label
        self.post_message(self.Said(f"copied {self.copied_from}; v pastes it into another row"))

    def action_paste_row(self) -> None:
        if self.clipboard is None:
            self.post_message(self.Said("Copy a row with c first.", error=True))
            return
        self._edit(
            lambda row, column: self.grid.paste_row(row, self.clipboard),
            lambda row, column: f"pasted {self.copied_from}'s values into {self.grid.rows[row].label}",
        )

    def action_take(self, model: int) -> None:
        which = "first" if model == 0 else "second"
        self._edit(
            lambda row, column: self.grid.take_from(row, model),
            lambda row, column: f"{self.grid.rows[row].label} taken wholly from the {which} model",
        )

    def action_undo(self) -> None:
        self._history(self.grid.undo if self.grid is not None else None, "undone", "nothing to undo")

    def action_redo(self) -> None:
        self._history(self.grid.redo if self.grid is not None else None, "redone", "nothing to redo")

    def _history(self, step, done: str, nothing: str) -> None:
        if step is None:
            return
        if not step():
            self.post_message(self.Said(nothing))
            return
        self._redraw()
        self.post_message(self.Said(f"{done}; u undoes, ctrl+r redoes"))

    def action_split(self) -> None:
        if self.grid is not None:
            self.post_message(self.SplitRequested())

    def action_edit(self) -> None:
        position = self.position
        if position is None:
            if self.grid is not None:
                self.post_message(self.Said("That column shows what a model changed; move left to edit a value."))
            return
        if not self.grid.exists(*position):
            self.post_message(
                self.Said("Attention and MLP columns have no value outside the layers; the rest column sets it.", True)
            )
            return
        self.post_message(self.EditRequested(*position, self.grid.value(*position)))
        self.type_ahead.hold()  # the keys typed behind this one are the value: the editor gets them

    def action_select_cursor(self) -> None:
        # Enter edits the cell at once rather than through a CellSelected message, which would come after the
        # keys typed behind it and let them edit the table.
        self.action_edit()

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        event.stop()  # a click on a cell
        self.action_edit()

    def on_focus(self) -> None:
        # Focus comes back while the editor is open only from the person (tab, a click): the table's keys are its
        # own again. (Closing the editor gives them back before it focuses the table.)
        self.type_ahead.resume()

    async def _on_key(self, event: events.Key) -> None:
        if self.type_ahead.divert(event):
            return
        if await run_own_binding(self, event.key):
            event.stop()
            event.prevent_default()


class CellEditor(TextField):
    """The field a cell's value is typed in; its screen opens it for ``LayerTable.EditRequested``.

    Enter and escape close it only once the screen has answered (the value set, or refused with the editor left
    open), so the keys typed behind them are held until then, and go to the table or back to the editor.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, placeholder="value, then enter (escape cancels)", type="number")
        self.type_ahead = TypeAhead(self)

    async def _on_key(self, event: events.Key) -> None:
        # Runs before TextField's handler, which submits on enter; escape goes up to the screen, which closes.
        if not self.type_ahead.divert(event) and event.key in ("enter", "escape"):
            self.type_ahead.hold()
