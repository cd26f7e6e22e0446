"""The wizard's LoRA extraction: the Models step's two models as a base and its fine-tune, cut into an adapter.

Opened from the Models step (ctrl+t, then l). The base is the model marked base (else the first), the
fine-tune the other one. The screen asks what ``tui-merge extract-lora`` asks (the largest rank, the relative
threshold that picks each module's rank, the output folder), says the line that runs the same extraction without
the wizard, and runs it in a worker: a line per module in the log (its rank and the share of its difference kept),
a bar, a summary. escape stops a running extraction (nothing is left at the output) or goes back to the models.
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
from textual.widgets import Footer, Input, Label, ProgressBar, RichLog, Static

from tui_merge.errors import TuiMergeError
from tui_merge.tui.fields import TextField
from tui_merge.tui.following_log import FollowingLog
from tui_merge.tui.screens.tool_screen import ToolScreen
from tui_merge.wizard.state import WizardState


class ExtractionStopped(Exception):
    """escape stopped the extraction between two tensors."""


class ExtractScreen(ToolScreen):
    """Cut a LoRA adapter from the fine-tune and its base."""

    DEFAULT_CSS = """
    ExtractScreen #extract-title { height: auto; padding: 0 1; }
    ExtractScreen #extract-form { height: 1; padding: 0 1; margin: 1 0 0 0; }
    ExtractScreen #extract-form Label { padding: 0 1 0 0; }
    ExtractScreen #extract-form TextField { width: 8; margin: 0 2 0 0; }
    ExtractScreen #extract-form #folder { width: 1fr; margin: 0; }
    ExtractScreen #extract-command { height: auto; padding: 0 1; color: $text-muted; }
    ExtractScreen #extract-log { height: 1fr; border: round $panel; }
    ExtractScreen #tool-status { height: auto; max-height: 3; padding: 0 1; }
    """
    BINDINGS = [
        Binding("ctrl+r", "extract", "extract", tooltip="cut the adapter into the output folder"),
        Binding("escape", "back", "stop/back", tooltip="stop a running extraction, else back to the models"),
        Binding("f1", "help", "help", tooltip="this help, with every key of the extraction"),
    ]
    GROUP = "extract"
    HELP_TITLE = "Extract a LoRA adapter"
    HELP = (
        "A LoRA adapter turns the base into its fine-tune: per linear module, the truncated SVD of the "
        "difference between the two, in float32. Embeddings, the head and changed norms are saved whole; "
        "unchanged modules are left out.\n\n"
        "rank is the largest rank of a module (128, as mergekit). threshold keeps only the singular values of at "
        "least that fraction of a module's largest, so each module gets the rank its change needs (0 keeps "
        "every one up to the rank). The folder is where the adapter appears, whole or not at all.\n\n"
        "ctrl+r extracts; each log line says a module's rank and how much of its difference that rank keeps. "
        "escape stops a running extraction (nothing is left at the folder) or goes back to the models. The line "
        "under the fields runs the same extraction without the wizard; apply the adapter as BASE+FOLDER in a "
        "merge config."
    )

    class Said(Message):
        """A line for the log, and the bar's count."""

        def __init__(self, line: str, done: int, total: int) -> None:
            super().__init__()
            self.line, self.done, self.total = line, done, total

    def __init__(self, state: WizardState) -> None:
        super().__init__()
        self.state = state
        self.stop = threading.Event()
        self.running = False
        base = state.effective_base or (state.models[0] if state.models else None)
        others = [name for name in state.models if name != base]
        self.base, self.tuned = base, others[0] if len(others) == 1 else None

    def compose(self) -> ComposeResult:
        yield Static("", id="extract-title")
        with Horizontal(id="extract-form"):
            yield Label("rank")
            yield TextField("128", id="rank", type="integer", compact=True)
            yield Label("threshold")
            yield TextField("0", id="threshold", type="number", compact=True)
            yield Label("folder")
            yield TextField(self._default_folder(), id="folder", compact=True)
        yield Static("", id="extract-command")
        yield ProgressBar(id="extract-progress", show_eta=False)
        yield FollowingLog(id="extract-log")
        yield Static("", id="tool-status")
        yield Footer(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        title = self.query_one("#extract-title", Static)
        if self.tuned is None:
            count = len(self.state.models)
            title.update(Text(f"extract-lora takes a base and one fine-tune; the Models step has {count} models. "
                              "escape goes back.", style="bold red"))  # fmt: skip
            return
        labels = {name: self.state.infos[name].label for name in (self.base, self.tuned)}
        title.update(
            Text.assemble(
                ("LoRA adapter of ", "bold"),
                (labels[self.tuned], "bold"),
                (" on ", "bold"),
                (labels[self.base], "bold"),
                " (the base is the model marked base, else the first)",
            )
        )
        self.query_one("#rank", Input).focus()
        self.query_one("#extract-progress", ProgressBar).display = False
        self._show_command()

    def _default_folder(self) -> str:
        if len(self.state.models) < 2:
            return "./lora"
        base = self.state.effective_base or self.state.models[0]
        tuned = next((name for name in self.state.models if name != base), base)
        return f"./{self.state.infos[tuned].label.split('/')[-1]}-lora"

    def _values(self) -> tuple[int, float, str]:
        rank = self.query_one("#rank", Input).value.strip()
        threshold = self.query_one("#threshold", Input).value.strip()
        folder = self.query_one("#folder", Input).value.strip()
        if not rank.isdigit() or int(rank) < 1:
            raise TuiMergeError("rank must be a whole number of at least 1.")
        try:
            fraction = float(threshold or 0)
        except ValueError:
            raise TuiMergeError("threshold must be a number between 0 and 1.") from None
        if not 0 <= fraction <= 1:
            raise TuiMergeError("threshold must be a number between 0 and 1.")
        if not folder:
            raise TuiMergeError("Name the adapter's folder.")
        return int(rank), fraction, folder

    @on(Input.Changed)
    def _show_command(self) -> None:
        if self.tuned is None:
            return
        rank = self.query_one("#rank", Input).value.strip()
        threshold = self.query_one("#threshold", Input).value.strip()
        words = ["tui-merge", "extract-lora", "--model", self.tuned, "--base", self.base, "--max-rank", rank]
        if threshold not in ("", "0", "0.0"):
            words += ["--relative-threshold", threshold]
        words.append(self.query_one("#folder", Input).value.strip())
        self.query_one("#extract-command", Static).update(Text("same without the wizard: " + shlex.join(words)))

    def action_extract(self) -> None:
        if self.running or self.tuned is None:
            return
        try:
            rank, threshold, folder = self._values()
        except TuiMergeError as error:
            self.say(error.message, error=True)
            return
        self.query_one("#extract-log", RichLog).clear()
        self.query_one("#extract-progress", ProgressBar).display = True
        self.stop.clear()
        self.running = True
        self.say(f"extracting into {folder}… escape stops")
        self.extract(rank, threshold, folder)

    @work(thread=True, exclusive=True, exit_on_error=False, group="extract", description="extract a LoRA")
    def extract(self, rank: int, threshold: float, folder: str) -> None:
        from tui_merge.tools.extract_lora import ExtractionOptions, extract_lora

        def said(result, done: int, total: int) -> None:
            if self.stop.is_set():
                raise ExtractionStopped
            name = result.name.removesuffix(".weight")
            if result.treatment == "lora":
                line = f"{name}  rank {result.rank}  keeps {result.captured:.2%}"
            elif result.treatment == "whole":
                line = f"{name}  saved whole ({result.reason})"
            else:
                line = f"{name}  left out ({result.reason})"
            self.post_message(self.Said(line, done, total))

        options = ExtractionOptions(max_rank=rank, relative_threshold=threshold)
        try:
            summary = extract_lora(self.state.infos[self.base], self.state.infos[self.tuned], Path(folder), options,
                                   base_reference=self.base, on_module=said)  # fmt: skip
        except ExtractionStopped:
            self.post_message(self.Ended(f"stopped; nothing was written at {folder}", error=True))
            return
        except (TuiMergeError, OSError) as error:
            self.post_message(self.Ended(getattr(error, "message", None) or str(error), error=True))
            return
        ranks = sorted(module.rank for module in summary.lora)
        self.post_message(self.Ended(
            f"Wrote the adapter to {folder}: {len(ranks)} modules, ranks {ranks[0]}-{ranks[-1]}; apply it as "
            f"{self.base}+{folder} in a merge config.", error=False))  # fmt: skip

    def on_extract_screen_said(self, message: Said) -> None:
        self.query_one("#extract-log", RichLog).write(Text(message.line))
        self.query_one("#extract-progress", ProgressBar).update(total=message.total, progress=message.done)

    def action_back(self) -> None:
        if self.running:
            self.stop.set()
            self.say("stopping at the next module…")
            return
        self.dismiss()
