"""Step 1: choose the models, mark the base, order them by priority."""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from tui_merge.errors import TuiMergeError
from tui_merge.models.info import ModelInfo, distinct_labels, load_model_info, repeated_model, same_model_sentence
from tui_merge.models.lora import split_reference
from tui_merge.tui.fields import EntryField
from tui_merge.tui.messages import CacheListed, InspectFailed, ModelInspected
from tui_merge.tui.modals import CachePicker, FolderPicker
from tui_merge.tui.model_table import ModelTable
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
        "off again. A typed model+adapter reference works too. ctrl+n goes on once two models are added.\n\n"
        "ctrl+t builds something else from the models instead of a merge: l cuts a LoRA adapter of the "
        "fine-tune on the base (tui-merge extract-lora), m a mixture of experts of every listed model (tui-merge "
        "moe), each in a screen of its own."
    )
    BINDINGS = [
        Binding("ctrl+o", "browse", "browse", tooltip="browse folders for a model", id="browse"),
        Binding("ctrl+l", "cache", "HF cache", tooltip="list the models in the local Hugging Face cache", id="cache"),
        Binding("ctrl+t", "tools", "tools", tooltip="build something else from these models: a LoRA, a MoE"),
    ]
    _replacing: str | None = None
    """The model an adapter is being attached to or taken off, while the new reference is inspected."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._waiting: list[str] = []
        """Models to add, in the order given; the first is being inspected. One at a time, so the list keeps
        that order however long each inspection takes."""
        self._problem: str | None = None
        """Why a model given while others waited could not be added: said again once the last is added."""

    def compose_body(self) -> ComposeResult:
        yield Static("Add models: type a folder or a hub id (org/name) and press enter.", classes="hint")
        yield EntryField(placeholder="path/to/model or org/name", id="path", suggester=PathSuggester())
        yield ModelTable(id="models")
        yield Static("table: b base · shift+↑/↓ order · delete remove · a adapter", classes="hint")

    def on_mount(self) -> None:
        self.refresh_table()

    def on_screen_resume(self) -> None:
        self.refresh_table()

    def refresh_table(self, cursor: str | None = None) -> None:
        """Show the state's models, the cursor on ``cursor`` (else where it was)."""
        base = self.state.effective_base if self.state.base else None
        self.query_one(ModelTable).show(self.state.models, self.state.infos, base, cursor)

    @on(Input.Submitted, "#path")
    def add_typed(self, event: Input.Submitted) -> None:
        argument = event.value.strip()
        if argument:
            self.add_model(argument)

    def add_model(self, argument: str) -> None:
        """Inspect a model in the background and add it when that succeeds, after those given before it."""
        if argument in self.state.models or argument in self._waiting:
            self.status(f"{argument} is already in the list.", error=True)
            return
        self._waiting.append(argument)
        if len(self._waiting) == 1:
            self._problem = None
            self._inspect_next()

    def _inspect_next(self) -> None:
        if self._waiting:
            self.status(f"inspecting {self._waiting[0]}…")
            self.inspect(self._waiting[0])
        elif self._problem:
            self.status(self._problem, error=True)

    @work(thread=True, exit_on_error=False, group="inspect", description="inspect a model")
    def inspect(self, argument: str) -> None:
        try:
            info = load_model_info(argument, self.wizard.cache_dir)
        except TuiMergeError as error:
            self.post_message(InspectFailed(argument, error.message))
            return
        self.post_message(ModelInspected(argument, info))

    def _adding(self, argument: str) -> bool:
        """True when ``argument``'s inspection is the one the list of models to add waits on (else an adapter's)."""
        return bool(self._waiting) and self._waiting[0] == argument and self._replacing != argument

    def on_model_inspected(self, message: ModelInspected) -> None:
        adding = self._adding(message.argument)
        replacing = None if adding else self._replacing
        if not adding:
            self._replacing = None
        listed = [(name, self.state.infos[name]) for name in self.state.models if name != replacing]
        repeated = repeated_model([*listed, (message.argument, message.info)])
        if repeated is not None:
            self._failed(message.argument, same_model_sentence(*repeated), adding)
        elif not adding:
            self._replace(replacing, message.argument, message.info)
        else:
            self.state.add_model(message.argument, message.info)
            self.refresh_table()
            info = message.info
            self.status(
                f"added {info.label}: {info.facts.model_type}, {info.depth} layers, {human_bytes(info.total_bytes)}"
            )
        if adding:
            self._waiting.pop(0)
            self._inspect_next()

    def on_inspect_failed(self, message: InspectFailed) -> None:
        adding = self._adding(message.argument)
        if not adding:
            self._replacing = None
        self._failed(message.argument, message.message, adding)
        if adding:
            self._waiting.pop(0)
            self._inspect_next()

    def _failed(self, argument: str, problem: str, adding: bool) -> None:
        """Say why ``argument`` was not added; one given to be added goes back in the empty field, to correct."""
        self.status(problem, error=True)
        if adding:
            self._problem = problem
            field = self.query_one("#path", EntryField)
            if not field.value:
                field.value = argument

    @on(ModelTable.AdapterRequested)
    def adapter_requested(self, message: ModelTable.AdapterRequested) -> None:
        model = message.model
        if not message.attach:
            if self.state.infos[model].source.adapter is not None:
                self._inspect_replacement(model, split_reference(model)[0])
            return

        def picked(folder: str | None) -> None:
            if folder:
                self._inspect_replacement(model, f"{split_reference(model)[0]}+{folder}")

        self.app.push_screen(FolderPicker(self.browse_start(), "Choose a LoRA adapter folder"), picked)

    def _inspect_replacement(self, old: str, new: str) -> None:
        self._replacing = old
        self.status(f"inspecting {new}…")
        self.inspect(new)

    def _replace(self, old: str, new: str, info: ModelInfo) -> None:
        """``new`` (the same model with another adapter, or none) in ``old``'s place, as the base if it was."""
        self.state.replace_model(old, new, info)
        self.refresh_table(cursor=new)
        said, model = info.adapter_summary, info.label.partition("+")[0]
        self.status(f"{model} now reads its weights through {said}" if said else f"{model} has no adapter now")

    @on(ModelTable.BaseMarked)
    def base_marked(self, message: ModelTable.BaseMarked) -> None:
        self.state.base = message.model
        self.state.layers_changed()
        self.refresh_table()
        self.status(f"{self.state.infos[message.model].label} is the base")

    @on(ModelTable.MoveRequested)
    def move_requested(self, message: ModelTable.MoveRequested) -> None:
        models = self.state.models
        index = models.index(message.model)
        target = index + message.step
        if 0 <= target < len(models):
            models[index], models[target] = models[target], models[index]
            self.state.layers_changed()
            self.refresh_table(cursor=message.model)

    @on(ModelTable.RemoveRequested)
    def remove_requested(self, message: ModelTable.RemoveRequested) -> None:
        labels = distinct_labels([self.state.infos[name] for name in self.state.models])
        self.status(f"removed {labels[self.state.models.index(message.model)]}")
        self.state.remove_model(message.model)
        self.refresh_table()

    def action_tools(self) -> None:
        """Offer the other things these models can become; each opens its own screen."""
        from tui_merge.tui.modals import ChoiceScreen
        from tui_merge.tui.screens.extract import ExtractScreen
        from tui_merge.tui.screens.moe import MoeScreen

        def answered(key: str | None) -> None:
            if key == "l":
                self.app.push_screen(ExtractScreen(self.state))
            elif key == "m":
                self.app.push_screen(MoeScreen(self.state))

        answers = [("l", "a LoRA adapter of the fine-tune (extract-lora)"), ("m", "a mixture of experts (moe)")]
        self.app.push_screen(ChoiceScreen("Build from these models, instead of a merge:", answers), answered)

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
        self.post_message(CacheListed(entries))

    def on_cache_listed(self, message: CacheListed) -> None:
        self.status("")

        def picked(repo: str | None) -> None:
            if repo:
                self.add_model(repo)

        self.app.push_screen(CachePicker(message.entries), picked)

    def problem(self) -> str | None:
        if len(self.state.models) < 2:
            return "Add at least two models to merge."
        return None
