"""Step 4: per-layer values in a table edited with the keyboard, with a sparkline per column."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Sparkline, Static

from tui_merge.tui.step import StepScreen
from tui_merge.wizard.grid import FINE_NUDGE, NUDGE, LayerGrid


class LayersScreen(StepScreen):
    """Edit the per-layer quantity: ``t``, or each model's weight."""

    STEP = 3
    HELP = (
        "Arrows move. + / - nudge the cell by 0.05, ] / [ by 0.01 (terminals do not\n"
        "report shift with + and -). e or enter types a value. m marks a row, g fills a\n"
        "linear gradient from the mark to the cursor in that column. c / v copy and\n"
        "paste a row. 0 / 1 take the layer wholly from the first / second model.\n"
        "u undoes, ctrl+r redoes. The sparklines show each column over depth.\n"
        "Rows above the layers set the embeddings, final norm and head."
    )
    BINDINGS = [
        Binding("plus,equals_sign", "nudge(1)", "+0.05", id="nudge-up"),
        Binding("minus,underscore", "nudge(-1)", "-0.05", id="nudge-down"),
        Binding("right_square_bracket", "fine(1)", "+0.01", show=False),
        Binding("left_square_bracket", "fine(-1)", "-0.01", show=False),
        Binding("e", "edit", "Type", id="edit"),
        Binding("m", "mark", "Mark", id="mark"),
        Binding("g", "gradient", "Gradient", id="gradient"),
        Binding("c", "copy_row", "Copy", show=False),
        Binding("v", "paste_row", "Paste", show=False),
        Binding("u", "undo", "Undo", id="undo"),
        Binding("ctrl+r", "redo", "Redo", show=False),
        Binding("0", "take(0)", "From 1st", show=False),
        Binding("1", "take(1)", "From 2nd", show=False),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="layers-title", classes="hint")
        yield DataTable(id="grid", cursor_type="cell", zebra_stripes=True)
        yield Vertical(id="sparklines")
        yield Input(id="cell-editor", placeholder="value, then enter (escape cancels)", type="number")

    def on_mount(self) -> None:
        self.mark: int | None = None
        self.clipboard: list[float] | None = None
        editor = self.query_one("#cell-editor", Input)
        editor.display = False
        grid = self.state.grid or self.state.rebuild_grid()
        title = self.query_one("#layers-title", Static)
        if grid is None:
            title.update(f"{self.state.method_name} has no per-layer value to edit; ctrl+n goes on.")
            self.query_one("#grid", DataTable).display = False
            return
        quantity = "t (0 = base, 1 = other)" if grid.columns[0].key == "t" else "each model's weight"
        title.update(f"{self.state.method_name}: {quantity}, per layer")
        table = self.query_one("#grid", DataTable)
        table.add_column("row", key="row")
        for index, column in enumerate(grid.columns):
            table.add_column(column.label, key=f"c{index}")
        for index, row in enumerate(grid.rows):
            table.add_row(
                Text(row.label), *[self._cell(grid, index, c) for c in range(len(grid.columns))], key=f"r{index}"
            )
        table.move_cursor(row=0, column=1)
        table.focus()
        self.query_one("#sparklines", Vertical).mount_all(
            Horizontal(
                Label(Text(f"{column.label[:12]:>12} "), classes="spark-label"),
                Sparkline(grid.profile(index), id=f"spark{index}"),
                classes="spark-row",
            )
            for index, column in enumerate(grid.columns)
        )

    @property
    def grid(self) -> LayerGrid | None:
        return self.state.grid

    def _cell(self, grid: LayerGrid, row: int, column: int) -> Text:
        return Text(f"{grid.value(row, column):.2f}", justify="right")

    def _position(self) -> tuple[int, int] | None:
        if self.grid is None:
            return None
        table = self.query_one("#grid", DataTable)
        return table.cursor_row, max(table.cursor_column - 1, 0)

    def refresh_cells(self) -> None:
        """Redraw every cell, the mark and the sparklines from the grid."""
        grid = self.grid
        table = self.query_one("#grid", DataTable)
        for index, row in enumerate(grid.rows):
            label = Text(("▸ " if index == self.mark else "") + row.label, style="bold" if index == self.mark else "")
            table.update_cell(f"r{index}", "row", label, update_width=True)
            for column in range(len(grid.columns)):
                table.update_cell(f"r{index}", f"c{column}", self._cell(grid, index, column))
        for index in range(len(grid.columns)):
            self.query_one(f"#spark{index}", Sparkline).data = grid.profile(index)

    def _edit(self, change) -> None:
        position = self._position()
        if position is None:
            return
        change(*position)
        self.refresh_cells()

    def action_nudge(self, direction: int) -> None:
        self._edit(lambda row, column: self.grid.nudge(row, column, direction * NUDGE))

    def action_fine(self, direction: int) -> None:
        self._edit(lambda row, column: self.grid.nudge(row, column, direction * FINE_NUDGE))

    def action_mark(self) -> None:
        position = self._position()
        if position:
            self.mark = position[0]
            self.refresh_cells()
            self.status(f"marked {self.grid.rows[self.mark].label}; move and press g to fill a gradient")

    def action_gradient(self) -> None:
        if self.mark is None:
            self.status("Mark a row with m first.", error=True)
            return
        self._edit(lambda row, column: self.grid.fill_gradient(column, self.mark, row))

    def action_copy_row(self) -> None:
        position = self._position()
        if position:
            self.clipboard = self.grid.copy_row(position[0])
            self.status(f"copied {self.grid.rows[position[0]].label}")

    def action_paste_row(self) -> None:
        if self.clipboard is not None:
            self._edit(lambda row, column: self.grid.paste_row(row, self.clipboard))

    def action_take(self, model: int) -> None:
        self._edit(lambda row, column: self.grid.take_from(row, model))

    def action_undo(self) -> None:
        if self.grid is not None and self.grid.undo():
            self.refresh_cells()

    def action_redo(self) -> None:
        if self.grid is not None and self.grid.redo():
            self.refresh_cells()

    @on(DataTable.CellSelected, "#grid")
    def cell_selected(self) -> None:
        self.action_edit()

    def action_edit(self) -> None:
        position = self._position()
        if position is None:
            return
        editor = self.query_one("#cell-editor", Input)
        editor.value = f"{self.grid.value(*position):g}"
        editor.display = True
        editor.focus()

    @on(Input.Submitted, "#cell-editor")
    def value_typed(self, event: Input.Submitted) -> None:
        try:
            number = float(event.value)
        except ValueError:
            self.status(f"{event.value!r} is not a number.", error=True)
            return
        self._close_editor()
        self._edit(lambda row, column: self.grid.set(row, column, number))

    def _close_editor(self) -> None:
        editor = self.query_one("#cell-editor", Input)
        editor.display = False
        self.query_one("#grid", DataTable).focus()

    def action_back(self) -> None:
        if self.query_one("#cell-editor", Input).display:
            self._close_editor()
            return
        super().action_back()
