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
        "Rows above the layers set the embeddings, final norm and head.\n"
        "s splits each quantity into attention, MLP and the rest of the layer (norms),\n"
        "as in the classic slerp recipe; s again joins them, keeping the rest column."
    )
    BINDINGS = [
        Binding("plus,equals_sign", "nudge(1)", "+.05", id="nudge-up"),
        Binding("minus,underscore", "nudge(-1)", "-.05", id="nudge-down"),
        Binding("right_square_bracket", "fine(1)", "+0.01", show=False),
        Binding("left_square_bracket", "fine(-1)", "-0.01", show=False),
        Binding("e", "edit", "Type", id="edit"),
        Binding("m", "mark", "Mark", id="mark", show=False),
        Binding("g", "gradient", "Fill", id="gradient"),
        Binding("c", "copy_row", "Copy", show=False),
        Binding("v", "paste_row", "Paste", show=False),
        Binding("u", "undo", "Undo", id="undo"),
        Binding("ctrl+r", "redo", "Redo", show=False),
        Binding("0", "take(0)", "From 1st", show=False),
        Binding("1", "take(1)", "From 2nd", show=False),
        Binding("s", "split", "Split", id="split"),
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
        self._build(grid)
        table = self.query_one("#grid", DataTable)
        table.move_cursor(row=0, column=1)
        table.focus()

    def _build(self, grid: LayerGrid) -> None:
        """Fill the table and the sparklines with the grid's rows and columns."""
        table = self.query_one("#grid", DataTable)
        table.clear(columns=True)
        table.add_column("row", key="row")
        for index in range(len(grid.columns)):
            table.add_column(grid.heading(index), key=f"c{index}")
        for index, row in enumerate(grid.rows):
            table.add_row(
                Text(row.label), *[self._cell(grid, index, c) for c in range(len(grid.columns))], key=f"r{index}"
            )
        sparklines = self.query_one("#sparklines", Vertical)
        sparklines.remove_children()
        sparklines.set_class(grid.split, "split")
        sparklines.mount_all(
            Horizontal(
                Label(Text(f"{grid.heading(index)[:12]:>12} "), classes="spark-label"),
                Sparkline(grid.profile(index), id=f"spark{index}"),
                classes="spark-row",
            )
            for index in range(len(grid.columns))
        )

    @property
    def grid(self) -> LayerGrid | None:
        return self.state.grid

    def _cell(self, grid: LayerGrid, row: int, column: int) -> Text:
        if not grid.exists(row, column):
            return Text("·", style="dim", justify="right")
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

    def action_split(self) -> None:
        if self.grid is None:
            return
        problem = self.state.set_split(not self.state.split)
        if problem:
            self.status(problem, error=True)
            return
        table = self.query_one("#grid", DataTable)
        row, column = table.cursor_row, table.cursor_column
        self.mark = None
        self._build(self.grid)
        table.move_cursor(row=row, column=min(column, len(self.grid.columns)))
        if self.state.split:
            self.status("split into attention, MLP and the rest of each layer; s joins them again")
        else:
            self.status("joined: each layer has one value again (the rest column's)")

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
        if not self.grid.exists(*position):
            self.status("Attention and MLP columns have no value outside the layers; the rest column sets it.")
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
