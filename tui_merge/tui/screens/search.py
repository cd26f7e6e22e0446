"""The wizard's search: the Review step's recipe searched as ``tui-merge search`` does, its trials live in a table.

Opened from the Review step (ctrl+f). It asks what the command asks most (where to search, what to score, how many
trials), says the line that runs the same search without the wizard, saves the recipe where the Run step would,
and runs the search in a worker: each trial's row appears when it starts and fills when it ends, the best marked
(★; the Pareto front with several objectives). escape stops a running search (the study keeps every finished
trial, and the same search goes on from there) or goes back to Review. enter on a finished trial opens its recipe
in the wizard, at Review, with this session's output folder and config path: ctrl+n merges it and the Run step's
Try panel talks to it.
"""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label, Static

from tui_merge.errors import TuiMergeError
from tui_merge.search.board import best_of, shown_value
from tui_merge.search.study import TrialRow
from tui_merge.tui.fields import TextField
from tui_merge.tui.screens.tool_screen import ToolScreen
from tui_merge.wizard.state import WizardState


def default_space(state: WizardState) -> str:
    """Where a first search looks: the method's per-layer parameter over its range (a model's own for a
    parameter each model sets: the first merged model's)."""
    method = state.method
    spec = next((spec for spec in method.params if spec.name == method.per_layer_param), None)
    if spec is None:
        spec = next((spec for spec in method.params if spec.kind == "float" and not spec.hidden), None)
    if spec is None:
        return ""
    low = spec.minimum if spec.minimum is not None else 0
    high = spec.maximum if spec.maximum is not None else max(1, spec.starting_value or 1)
    ends = f"{low:g}..{high:g}"
    if spec.scope == "model" and state.merged_models:
        return f"models[{state.models.index(state.merged_models[-1])}].{spec.name}={ends}"
    return f"{spec.name}={ends}"


class SearchScreen(ToolScreen):
    """Search the recipe's parameters and show the trials as they end."""

    DEFAULT_CSS = """
    SearchScreen #search-title { height: auto; padding: 0 1; }
    SearchScreen .search-form { height: 1; padding: 0 1; margin: 1 0 0 0; }
    SearchScreen .search-form Label { padding: 0 1 0 0; }
    SearchScreen .search-form TextField { width: 1fr; margin: 0 2 0 0; }
    SearchScreen .search-form #trials { width: 6; margin: 0; }
    SearchScreen #search-command { height: auto; padding: 0 1; color: $text-muted; }
    SearchScreen #trials-table { height: 1fr; border: round $panel; }
    SearchScreen #tool-status { height: auto; max-height: 3; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+r", "search", "search", tooltip="start (or go on with) the search"),
        Binding("escape", "back", "stop/back", tooltip="stop a running search, else back to Review"),
        Binding("f1", "help", "help", tooltip="this help, with every key of the search"),
    ]
    GROUP = "search"
    HELP_TITLE = "Search for the best merge"
    HELP = (
        "Each trial merges the recipe with values Optuna picks in the space, scores the merge by the objective "
        "and removes it; the study keeps every trial in a file beside the recipe, so the same search goes on "
        "where it stopped.\n\n"
        "space: NAME=LO..HI (a number in the range), NAME=V1,V2 (one of the values), NAME=LO..HI@layers (a value "
        "per layer) or NAME=LO..HI@K (a gradient of K anchors); several separated by spaces. NAME is a parameter "
        "(t) or a model's own (models[1].weight).\n\n"
        "objective: perplexity, perplexity:FILE or command:COMMAND (its last line is the number; $MERGED is the "
        "merge, $RECIPE its recipe); lower is better unless max: is in front; several separated by ' ; '.\n\n"
        "ctrl+r searches (the recipe is saved first, where the Run step saves it); escape stops (the trials in "
        "flight run again next time) or goes back. enter on a finished trial opens its recipe at Review, to "
        "merge it and try it. The line under the fields runs the same search without the wizard."
    )

    class TrialChanged(Message):
        def __init__(self, row: TrialRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, state: WizardState) -> None:
        super().__init__()
        self.state = state
        self.stop = threading.Event()
        self.running = False
        self.rows: dict[int, TrialRow] = {}
        self.directions: list[str] = []
        self.columns: list[str] = []
        self.best_after: int | None = None
        """The best trial of a finished search, for the cursor."""

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Search the {self.state.method_name} recipe's values", style="bold"), id="search-title")
        with Horizontal(classes="search-form"):
            yield Label("space")
            yield TextField(default_space(self.state), id="space", compact=True)
            yield Label("trials")
            yield TextField("20", id="trials", type="integer", compact=True)
        with Horizontal(classes="search-form"):
            yield Label("objective")
            yield TextField("perplexity", id="objective", compact=True)
        yield Static("", id="search-command")
        yield DataTable(id="trials-table", cursor_type="row", zebra_stripes=False)
        yield Static("", id="tool-status")
        yield Footer(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.query_one("#space", Input).focus()
        self._show_command()
        self.say("ctrl+r searches; F1 says how to write the space and the objective.")

    def _fields(self) -> tuple[list[str], list[str], int]:
        spaces = self.query_one("#space", Input).value.split()
        objectives = [part.strip() for part in self.query_one("#objective", Input).value.split(" ; ") if part.strip()]
        trials = self.query_one("#trials", Input).value.strip()
        if not trials.isdigit() or int(trials) < 1:
            raise TuiMergeError("trials must be a whole number of at least 1.")
        if not spaces:
            raise TuiMergeError("Say where to search, such as t=0..1.")
        return spaces, objectives, int(trials)

    def _study(self) -> Path:
        return Path(self.state.config_path).with_suffix(".search.db")

    @on(Input.Changed)
    def _show_command(self) -> None:
        words = ["tui-merge", "search", self.state.config_path]
        for space in self.query_one("#space", Input).value.split():
            words += ["--space", space]
        for objective in self.query_one("#objective", Input).value.split(" ; "):
            if objective.strip():
                words += ["--objective", objective.strip()]
        words += ["--trials", self.query_one("#trials", Input).value.strip()]
        self.query_one("#search-command", Static).update(Text("same without the wizard: " + shlex.join(words)))

    def action_search(self) -> None:
        if self.running:
            return
        try:
            spaces, objectives, trials = self._fields()
        except TuiMergeError as error:
            self.say(error.message, error=True)
            return

        def start() -> None:
            try:
                loaded = self.state.loaded_config()
                Path(self.state.config_path).write_text(loaded.text, encoding="utf-8")
                self.state.config_read = loaded.text
            except (TuiMergeError, OSError) as error:
                self.say(getattr(error, "message", None) or str(error), error=True)
                return
            self.stop.clear()
            self.running = True
            self.say("checking the space and the objective…")
            self.search(spaces, objectives, trials)

        self.app.claim_config_path(start)

    @work(thread=True, exclusive=True, exit_on_error=False, group="search", description="search")
    def search(self, spaces: list[str], objectives: list[str], trials: int) -> None:
        from tui_merge.config.loading import load_config
        from tui_merge.search.setup import build_settings
        from tui_merge.search.study import run_search

        try:
            loaded = load_config(Path(self.state.config_path))
            settings = build_settings(loaded, spaces, objectives, self._study(), trials=trials,
                                      device=self.state.device)  # fmt: skip
            self.app.call_from_thread(self._columns, settings)
            result = run_search(settings, lambda row: self.post_message(self.TrialChanged(row)),
                                lambda line: None, stop=self.stop)  # fmt: skip
        except TuiMergeError as error:
            self.post_message(self.Ended(error.message, error=True))
            return
        for row in result.rows:
            self.post_message(self.TrialChanged(row))
        if self.stop.is_set():
            self.post_message(self.Ended(f"stopped; the finished trials are kept in {settings.study}, ctrl+r goes on "
                                         "from there", error=False))  # fmt: skip
            return
        best = ", ".join(str(number) for number in result.best) or "none"
        self.best_after = result.best[0] if result.best else None
        self.post_message(self.Ended(f"done: {len(result.rows)} trials, best {best}; enter on a trial opens its "
                                     "recipe at Review", error=False))  # fmt: skip

    def on_tool_screen_ended(self, message: ToolScreen.Ended) -> None:
        """Said, and the cursor put on the best trial (its row came in a message before this one)."""
        super().on_tool_screen_ended(message)
        table = self.query_one("#trials-table", DataTable)
        if self.best_after is not None and str(self.best_after) in table.rows:
            table.move_cursor(row=table.get_row_index(str(self.best_after)))

    def _columns(self, settings) -> None:
        table = self.query_one("#trials-table", DataTable)
        table.clear(columns=True)
        self.rows.clear()
        self.directions = [objective.direction for objective in settings.objectives]
        self.columns = [dimension.name for dimension in settings.dimensions]
        arrows = {"minimize": "↓", "maximize": "↑"}
        table.add_column("trial", key="trial")
        for name in self.columns:
            table.add_column(name, key=f"value:{name}")
        for index, objective in enumerate(settings.objectives):
            table.add_column(f"{objective.label} {arrows[objective.direction]}", key=f"score:{index}")
        table.add_column("state", key="state")
        self.say("searching… escape stops")
        table.focus()

    def on_search_screen_trial_changed(self, message: TrialChanged) -> None:
        self.rows[message.row.number] = message.row
        table = self.query_one("#trials-table", DataTable)
        if not table.columns:
            return
        best = best_of(list(self.rows.values()), self.directions)
        for number, row in sorted(self.rows.items()):
            marked = number in best
            style = "bold green" if marked else ("red" if row.state == "failed" else "")
            cells = [Text(f"{'★ ' if marked else ''}{number}", style=style)]
            cells += [shown_value(row.values.get(name)) for name in self.columns]
            scores = [f"{score:.4g}" for score in row.scores] if row.scores else ["-"] * len(self.directions)
            cells += [Text(score, style=style) for score in scores]
            cells.append(Text(row.state if row.state != "failed" else f"failed: {row.error}", style="dim"))
            key = str(number)
            if key in table.rows:
                for column, cell in zip(table.columns, cells):
                    table.update_cell(key, column, cell, update_width=True)
            else:
                table.add_row(*cells, key=key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Open the trial's recipe at Review, keeping this session's output folder and config path."""
        row = self.rows.get(int(event.row_key.value))
        if row is None or row.state != "done" or self.running:
            if self.running:
                self.say("the search is running; escape stops it first", error=True)
            return
        app = self.app
        kept = (self.state.output, self.state.config_path, self.state.config_read)
        app.pop_screen()
        app.load_config(row.recipe)
        app.state.output, app.state.config_path, app.state.config_read = kept
        note = f"Opened trial {row.number}'s recipe; ctrl+n merges it into {kept[0]}."
        app.arrival_note = note  # said again once Review's plan is ready, which would otherwise say only "Ready."
        app.call_after_refresh(app.tell, note)

    def action_back(self) -> None:
        if self.running:
            self.stop.set()
            self.say("stopping the trials in flight…")
            return
        self.dismiss()
