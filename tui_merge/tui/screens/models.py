"""Step 1: choose the models, mark the base, order them by priority."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from tui_merge.errors import TuiMergeError
from tui_merge.models.info import ModelInfo, distinct_labels, load_model_info, repeated_model, same_model_sentence
from tui_merge.models.lora import split_reference
from tui_merge.tui.fields import TextField
from tui_merge.tui.messages import ModelInspected, WorkFailed
from tui_merge.tui.modals import CachePicker, FolderPicker
from tui_merge.tui.path_suggester import PathSuggester
from tui_merge.tui.step import StepScreen
from tui_merge.units import human_bytes


class ModelsScreen(StepScreen):
    """Add, order, remove models and mark the base."""

    STEP = 0
    HELP = (
        "Type a model folder (right arrow accepts the completion) or a hub id (org/name, org/name@revision), "
        "then enter. A hub id the local Hugging Face cache lacks is inspected from the Hub with nothing of its "
        "weights downloaded; the Run step asks before it downloads the files the merge reads. "
        "ctrl+o browses folders, starting beside the model added last: "
        "enter opens a folder, p picks the highlighted one, backspace goes to the parent, ~ home, and / or . "
        "types a path to jump to. ctrl+l lists the cache.\n\n"
        "In the table (tab to reach it): b marks the base model, shift+up / shift+down "
        "reorder (the first model has the highest priority, which matters for circuit), "
        "delete removes. a attaches a LoRA adapter folder to the highlighted model (its weights are read with "
        "the adapter applied, and the config names it as model+adapter, as mergekit does); shift+a takes it "
        "off again. A typed model+adapter reference works too. ctrl+n goes on once two models are added."
    )
    BINDINGS = [
        Binding("ctrl+o", "browse", "browse", tooltip="browse folders for a model", id="browse"),
        Binding("ctrl+l", "cache", "HF cache", tooltip="list the models in the local Hugging Face cache", id="cache"),
        Binding("b", "mark_base", "base", tooltip="mark the highlighted model as the base", id="base", show=False),
        Binding("shift+up", "move(-1)", "up", tooltip="move the model up (higher priority)", show=False),
        Binding("shift+down", "move(1)", "down", tooltip="move the model down", show=False),
        Binding("delete,x", "remove", "remove", tooltip="remove the highlighted model", show=False),
        Binding("a", "attach_adapter", "adapter", tooltip="attach a LoRA adapter to the highlighted model", show=False),
        Binding("A", "detach_adapter", "no adapter", tooltip="take the highlighted model's adapter off", show=False),
    ]
    _replacing: str | None = None
    """The model an adapter is being attached to or taken off, while the new reference is inspected."""

    def compose_body(self) -> ComposeResult:
        yield Static("Add models: type a folder or a hub id (org/name) and press enter.", classes="hint")
        yield TextField(placeholder="path/to/model or org/name", id="path", suggester=PathSuggester())
        table = DataTable(id="models", cursor_type="row", zebra_stripes=True)
        table.add_columns("", "model", "architecture", "layers", "size")
        yield table
        yield Static("table: b base · shift+↑/↓ order · delete remove · a adapter", classes="hint")

    def on_mount(self) -> None:
        self.refresh_table()

    def on_screen_resume(self) -> None:
        self.refresh_table()

    def refresh_table(self) -> None:
        """Show the state's models."""
        table = self.query_one("#models", DataTable)
        cursor = table.cursor_row
        table.clear()
        base = self.state.effective_base if self.state.base else None
        labels = distinct_labels([self.state.infos[argument] for argument in self.state.models])
        for argument, label in zip(self.state.models, labels):
            info = self.state.infos[argument]
            marker = Text("base", style="bold green") if argument == base else Text("")
            table.add_row(
                marker,
                Text(label),
                Text(f"{info.facts.model_type or '?'}"),
                Text(str(info.depth)),
                Text(human_bytes(info.total_bytes)),
                key=argument,
            )
        if self.state.models:
            table.move_cursor(row=min(cursor, len(self.state.models) - 1))

    @on(Input.Submitted, "#path")
    def add_typed(self, event: Input.Submitted) -> None:
        argument = event.value.strip()
        if argument:
            self.add_model(argument)

    def add_model(self, argument: str) -> None:
        """Inspect a model in the background and add it when that succeeds."""
        if argument in self.state.models:
            self.status(f"{argument} is already in the list.", error=True)
            return
        self.status(f"inspecting {argument}…")
        self.inspect(argument)

    @work(thread=True, exit_on_error=False, group="inspect", description="inspect a model")
    def inspect(self, argument: str) -> None:
        try:
            info = load_model_info(argument, self.wizard.cache_dir)
        except TuiMergeError as error:
            self.post_message(WorkFailed(error.message))
            return
        self.post_message(ModelInspected(argument, info))

    def on_model_inspected(self, message: ModelInspected) -> None:
        replacing, self._replacing = self._replacing, None
        listed = [(name, self.state.infos[name]) for name in self.state.models if name != replacing]
        repeated = repeated_model([*listed, (message.argument, message.info)])
        if repeated is not None:
            self.status(same_model_sentence(*repeated), error=True)
            return
        if replacing is not None:
            self._replace(replacing, message.argument, message.info)
            return
        self.state.add_model(message.argument, message.info)
        self.query_one("#path", Input).value = ""
        self.refresh_table()
        info = message.info
        self.status(
            f"added {info.label}: {info.facts.model_type}, {info.depth} layers, {human_bytes(info.total_bytes)}"
        )

    def on_work_failed(self, message: WorkFailed) -> None:
        self._replacing = None
        self.status(message.message, error=True)

    def action_attach_adapter(self) -> None:
        selected = self._selected()
        if selected is None:
            return

        def picked(folder: str | None) -> None:
            if folder:
                self._inspect_replacement(selected, f"{split_reference(selected)[0]}+{folder}")

        self.app.push_screen(FolderPicker(self.browse_start(), "Choose a LoRA adapter folder"), picked)

    def action_detach_adapter(self) -> None:
        selected = self._selected()
        if selected is not None and self.state.infos[selected].source.adapter is not None:
            self._inspect_replacement(selected, split_reference(selected)[0])

    def _inspect_replacement(self, old: str, new: str) -> None:
        self._replacing = old
        self.status(f"inspecting {new}…")
        self.inspect(new)

    def _replace(self, old: str, new: str, info: ModelInfo) -> None:
        """``new`` (the same model with another adapter, or none) in ``old``'s place, as the base if it was."""
        self.state.replace_model(old, new, info)
        self.refresh_table()
        self.query_one("#models", DataTable).move_cursor(row=self.state.models.index(new))
        said, model = info.adapter_summary, info.label.partition("+")[0]
        self.status(f"{model} now reads its weights through {said}" if said else f"{model} has no adapter now")

    def _selected(self) -> str | None:
        table = self.query_one("#models", DataTable)
        if not self.state.models:
            return None
        return self.state.models[table.cursor_row]

    def action_mark_base(self) -> None:
        selected = self._selected()
        if selected:
            self.state.base = selected
            self.state.layers_changed()
            self.refresh_table()
            self.status(f"{self.state.infos[selected].label} is the base")

    def action_move(self, step: int) -> None:
        selected = self._selected()
        if selected is None:
            return
        models = self.state.models
        index = models.index(selected)
        target = index + step
        if 0 <= target < len(models):
            models[index], models[target] = models[target], models[index]
            self.state.layers_changed()
            self.refresh_table()
            self.query_one("#models", DataTable).move_cursor(row=target)

    def action_remove(self) -> None:
        selected = self._selected()
        if selected:
            labels = distinct_labels([self.state.infos[name] for name in self.state.models])
            self.status(f"removed {labels[self.state.models.index(selected)]}")
            self.state.remove_model(selected)
            self.refresh_table()

    def action_browse(self) -> None:
        def picked(folder: str | None) -> None:
            if folder:
                self.add_model(folder)

        self.app.push_screen(FolderPicker(self.browse_start()), picked)

    def browse_start(self) -> Path:
        """Where the folder browser opens: beside the model added last, else the working folder."""
        local = [self.state.infos[name] for name in self.state.models if not self.state.infos[name].source.from_cache]
        return local[-1].folder.resolve().parent if local else Path.cwd()

    def action_cache(self) -> None:
        self.status("scanning the Hugging Face cache…")
        self.scan_cache()

    @work(thread=True, exit_on_error=False, group="cache", description="scan the HF cache")
    def scan_cache(self) -> None:
        from huggingface_hub import CacheNotFound, scan_cache_dir

        try:
            repos = [repo for repo in scan_cache_dir(self.wizard.cache_dir).repos if repo.repo_type == "model"]
        except CacheNotFound:
            repos = []
        entries = [
            (repo.repo_id, f"{repo.repo_id}  {repo.size_on_disk_str}  used {repo.last_accessed_str}")
            for repo in sorted(repos, key=lambda repo: -repo.last_accessed)
        ]
        self.app.call_from_thread(self._show_cache, entries)

    def _show_cache(self, entries: list[tuple[str, str]]) -> None:
        self.status("")

        def picked(repo: str | None) -> None:
            if repo:
                self.add_model(repo)

        self.app.push_screen(CachePicker(entries), picked)

    def problem(self) -> str | None:
        if len(self.state.models) < 2:
            return "Add at least two models to merge."
        return None
