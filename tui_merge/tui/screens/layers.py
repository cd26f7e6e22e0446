"""Step 4: per-layer values in a table edited with the keyboard, each value drawn as a bar on its range."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.widgets import Static

from tui_merge.tui.fields import TextField
from tui_merge.tui.layer_table import LayerTable
from tui_merge.tui.step import StepScreen
from tui_merge.wizard.grid import LayerGrid


class LayersScreen(StepScreen):
    """Edit the per-layer quantity: ``t``, or each model's weight."""

    STEP = 3
    HELP = (
        "Arrows move. + / - nudge the cell by 0.05, ] / [ by 0.01 (terminals do not "
        "report shift with + and -). e or enter types a value. m marks a row, g fills a "
        "linear gradient from the mark to the cursor in that column. c / v copy and "
        "paste a row. 0 / 1 take the layer wholly from the first / second model. "
        "u undoes, ctrl+r redoes. Each value has a bar on the parameter's range (0 to 1 for weights and t), "
        "so the column of bars draws the curve over depth. "
        "Rows above the layers set the embeddings, final norm and head. "
        "s splits each quantity into attention, MLP and the rest of the layer (norms), "
        "as in the classic slerp recipe; s again joins them, keeping the rest column."
    )

    def compose_body(self) -> ComposeResult:
        yield Static("", id="layers-title", classes="hint")
        yield LayerTable(id="grid")
        yield TextField(id="cell-editor", placeholder="value, then enter (escape cancels)", type="number")

    def on_mount(self) -> None:
        self.query_one("#cell-editor", TextField).display = False
        grid = self.state.grid or self.state.rebuild_grid()
        title = self.query_one("#layers-title", Static)
        table = self.query_one(LayerTable)
        if grid is None:
            title.update(f"{self.state.method_name} has no per-layer value to edit; ctrl+n goes on.")
            table.display = False
            return
        quantity = "t (0 = base, 1 = other)" if grid.columns[0].key == "t" else "each model's weight"
        title.update(f"{self.state.method_name}: {quantity}, per layer")
        self._show(grid)
        table.focus()
        if self.state.grid_note:
            self.status(self.state.grid_note)
            self.state.grid_note = None

    def _show(self, grid: LayerGrid) -> None:
        """Draw the table."""
        self.query_one(LayerTable).show(grid)

    @on(LayerTable.Said)
    def table_said(self, event: LayerTable.Said) -> None:
        self.status(event.text, error=event.error)

    @on(LayerTable.SplitRequested)
    def split_requested(self) -> None:
        problem = self.state.set_split(not self.state.split)
        if problem:
            self.status(problem, error=True)
            return
        self._show(self.state.grid)
        if self.state.split:
            self.status("split into attention, MLP and the rest of each layer; s joins them again")
        else:
            self.status("joined: each layer has one value again (the rest column's)")

    @on(LayerTable.EditRequested)
    def edit_requested(self, event: LayerTable.EditRequested) -> None:
        editor = self.query_one("#cell-editor", TextField)
        editor.value = f"{event.value:g}"
        editor.display = True
        editor.focus()

    @on(TextField.Submitted, "#cell-editor")
    def value_typed(self, event: TextField.Submitted) -> None:
        table = self.query_one(LayerTable)
        spec = table.grid.columns[table.position[1]].spec
        value = spec.parse(event.value) if spec else event.value
        problem = spec.problem(value) if spec else None
        if problem or not isinstance(value, (int, float)):
            self.status(f"{spec.name if spec else 'the value'} {problem or 'must be a number'}.", error=True)
            return
        self._close_editor()
        table.set_value(float(value))

    def _close_editor(self) -> None:
        self.query_one("#cell-editor", TextField).display = False
        self.query_one(LayerTable).focus()

    def action_back(self) -> None:
        if self.query_one("#cell-editor", TextField).display:
            self._close_editor()
            return
        super().action_back()
