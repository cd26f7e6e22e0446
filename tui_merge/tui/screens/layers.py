"""Step 4: per-layer values in a table edited with the keyboard, each value drawn as a bar on its range."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.widgets import Static

from tui_merge.engine.control import MergeControl
from tui_merge.errors import TuiMergeError
from tui_merge.models.changes import MeasureStopped, measure_changes
from tui_merge.models.info import distinct_labels
from tui_merge.tui.insight import Insight
from tui_merge.tui.layer_table import CellEditor, LayerTable
from tui_merge.tui.messages import InsightProgress, InsightReady
from tui_merge.tui.step import StepScreen
from tui_merge.wizard.grid import LayerGrid


class LayersScreen(StepScreen):
    """Edit the per-layer quantity: ``t``, or each model's weight."""

    STEP = 3
    HELP = (
        "Arrows move. + / - nudge the cell by 0.05, ] / [ by 0.01 (terminals do not "
        "report shift with + and -). e or enter types a value. m marks a row, g fills a "
        "linear gradient from the mark to the cursor in that column, and e with a row marked types one value "
        "for every row from the mark to the cursor (either clears the mark). The status line says what each "
        "key did. c / v copy and "
        "paste a row. 0 / 1 take the layer wholly from the first / second model. "
        "u undoes, ctrl+r redoes. Each value has a bar on the parameter's range (0 to 1 for weights and t), "
        "so the column of bars draws the curve over depth. "
        "The rows before and after the layers set the embeddings, the final norm and the head. "
        "s splits each quantity into attention, MLP and the rest of the layer (norms), "
        "as in the classic slerp recipe; s again joins them, keeping the rest column.\n\n"
        "The columns on the right are read, not edited: they show what each fine-tune changed, measured "
        "in the background when the step opens (the table works meanwhile; the figures are cached, so "
        "reopening is instant). Δ shows a model's relative change from the base, ‖W − W_base‖ / ‖W_base‖, "
        "as three bars per layer (attention, MLP, norms), each scaled to the largest change of that "
        "component: a layer a fine-tune barely touched can come from the base. ~ shows, for two models, "
        "the cosine between their changes: green where they moved the weights the same way, red where "
        "they pull apart, the taller the stronger. Where two fine-tunes fight, favour one of them in that "
        "layer. At 80 columns the models are numbered (the line above the table says which number is which "
        "model); from 120 columns the names and the numbers are shown."
    )

    def compose_body(self) -> ComposeResult:
        yield Static("", id="layers-title", classes="hint")
        yield Static("", id="insight-progress", classes="hint")
        yield LayerTable(id="grid")
        yield Static(LayerTable.key_legend(), id="layer-keys", classes="hint")
        yield CellEditor(id="cell-editor")

    def on_mount(self) -> None:
        self.control = MergeControl()
        self.query_one(CellEditor).display = False
        grid = self.state.grid or self.state.rebuild_grid()
        title = self.query_one("#layers-title", Static)
        table = self.query_one(LayerTable)
        if grid is None:
            title.update(f"{self.state.method_name} has no per-layer value to edit; ctrl+n goes on.")
            table.display = False
            self.query_one("#layer-keys", Static).display = False
            return
        quantity = "t (0 = base, 1 = other)" if grid.columns[0].key == "t" else "each model's weight"
        title.update(f"{self.state.method_name}: {quantity}, per layer")
        self._show(grid)
        table.focus()
        self.measure()
        if self.state.grid_note:
            self.status(self.state.grid_note)
            self.state.grid_note = None

    def _show(self, grid: LayerGrid) -> None:
        """Draw the table."""
        self.query_one(LayerTable).show(grid)
        self._relayout_legend()

    def _relayout_legend(self) -> None:
        # A second layout of the line above the table once this one is drawn: when the table's header grows a row
        # (split columns) or the legend arrives while a layout is pending, Textual can keep the line's old height
        # and cut its text (``StepScreen.status`` does the same for the status line).
        self.call_after_refresh(self.query_one("#insight-progress", Static).refresh, layout=True)

    @work(thread=True, exit_on_error=False, exclusive=True, group="insight", description="measure layer changes")
    def measure(self) -> None:
        """What each model changed per layer, read in the background: the table can be edited meanwhile."""
        state = self.state
        named = [(name, state.infos[name]) for name in state.models]
        reference_name = state.effective_base or state.models[0]
        reference = (reference_name, state.infos[reference_name])

        def progress(done: int, total: int) -> None:
            self.post_message(InsightProgress(done, total))  # queued counts give way to newer ones (can_replace)

        try:
            report = measure_changes(named, reference, on_progress=progress, checkpoint=self.control.checkpoint)
        except MeasureStopped:
            return
        except (TuiMergeError, OSError) as error:
            self.post_message(InsightProgress(0, 0, getattr(error, "message", None) or str(error)))
            return
        self.post_message(InsightReady(report))

    def on_insight_progress(self, message: InsightProgress) -> None:
        line = self.query_one("#insight-progress", Static)
        if message.problem:
            line.update(Text(f"What each model changed could not be measured: {message.problem}", style="red"))
        elif message.total:
            line.update(
                f"measuring what each model changed… {message.done / message.total:.0%} (the table works meanwhile)"
            )

    def on_insight_ready(self, message: InsightReady) -> None:
        table = self.query_one(LayerTable)
        labels = dict(zip(self.state.models, distinct_labels([self.state.infos[name] for name in self.state.models])))
        insight = Insight(message.report, labels, wide=self.app.size.width >= 120)
        table.show(table.grid, insight)
        self.query_one("#insight-progress", Static).update(insight.legend())
        self._relayout_legend()

    def on_unmount(self) -> None:
        self.control.stop()  # leaving the step stops the measurement; reopening reads the cache

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
            parts = ", ".join(part.label for part in self.state.component_parts())
            self.status(f"split into {parts} and the rest of each layer; s joins them again")
        else:
            self.status("joined: each layer has one value again (the rest column's)")

    @on(LayerTable.EditRequested)
    def edit_requested(self, event: LayerTable.EditRequested) -> None:
        editor = self.query_one(CellEditor)
        editor.value = f"{event.value:g}"
        editor.display = True
        editor.focus()
        editor.type_ahead.resume()
        table = self.query_one(LayerTable)
        table.type_ahead.pass_to(editor)  # what was typed behind e or enter
        if table.mark is not None:
            rows = table.grid.rows
            self.status(f"type the value for every row from {rows[table.mark].label} to {rows[event.row].label}; "
                        "enter sets them, escape keeps them")  # fmt: skip

    @on(CellEditor.Submitted, "#cell-editor")
    def value_typed(self, event: CellEditor.Submitted) -> None:
        table = self.query_one(LayerTable)
        spec = table.grid.columns[table.position[1]].spec
        value = spec.parse(event.value) if spec else event.value
        problem = spec.problem(value) if spec else None
        if problem or not isinstance(value, (int, float)):
            self.status(f"{spec.name if spec else 'the value'} {problem or 'must be a number'}.", error=True)
            self.query_one(CellEditor).type_ahead.resume()  # still open: the keys typed behind enter are its
            return
        self._close_editor()
        table.set_value(float(value))

    def _close_editor(self) -> None:
        editor = self.query_one(CellEditor)
        editor.display = False
        table = self.query_one(LayerTable)
        table.type_ahead.resume()
        table.focus()
        editor.type_ahead.pass_to(table)  # what was typed behind enter or escape edits the table

    def action_back(self) -> None:
        if self.query_one(CellEditor).display:
            self._close_editor()
            return
        super().action_back()
