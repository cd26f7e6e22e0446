"""Try the merge: a prompt's continuation by the merge and each parent, side by side, and their perplexity.

Opened with ``t`` from the Run step once the merge is done. Everything runs
in a worker thread, one model in memory at a time (as ``tui-merge
compare``): the continuations stream into their panels token by token, the
perplexity table fills in as each model is scored. escape stops the work at
the next token or window; pressed again (or with nothing running) it goes
back to the Run step. The workers only post messages (the screen's handlers
draw them); what a model writes is shown as plain text, never as markup, and
a failure of torch or the disk during the work is said in the status line,
leaving the wizard running.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from tui_merge.errors import TuiMergeError
from tui_merge.tui.fields import TextField
from tui_merge.tui.path_suggester import PathSuggester

MAX_NEW_TOKENS = 48


class TryScreen(Screen):
    """Prompts and perplexity for the merge and its parents."""

    DEFAULT_CSS = """
    TryScreen #try-title { height: 1; padding: 0 1; }
    TryScreen #panels { height: 1fr; }
    TryScreen .panel { width: 1fr; height: 1fr; border: round $panel; padding: 0 1; overflow-y: auto; }
    TryScreen #scores { height: 5; }
    TryScreen #try-status { height: auto; max-height: 2; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape", "back", "stop/back", tooltip="stop what is running, else back to the Run step"),
        Binding("ctrl+s", "perplexity", "score", tooltip="score every model on the text file (or the sample)"),
        Binding("f1", "help", "help", tooltip="this help, with every key of Try"),
    ]
    HELP = (
        "Type a prompt and press enter: the merge and each parent continue it greedily, one model in memory at "
        "a time, the text streaming into each model's panel. A parent that cannot be loaded (no tokenizer files, "
        "an adapter) is skipped and says why.\n\n"
        "ctrl+s scores every model on a text file (type its path in the field below the panels; empty scores "
        "the built-in sample): perplexity, the exponential of the mean next-token loss, lower is better. A "
        "merge close to its parents' perplexity kept what they knew; a much higher one lost it. The demo's "
        "models are untrained, so their text is noise and their perplexity near the vocabulary size.\n\n"
        "escape stops what is running at the next token or window; with nothing running it goes back to the "
        "Run step."
    )

    class Said(Message):
        """A line for the status."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class PanelShows(Message):
        """What a model's panel shows now."""

        def __init__(self, index: int, text: Text) -> None:
            super().__init__()
            self.index, self.text = index, text

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TryScreen.PanelShows) and message.index == self.index

    class ScoresShown(Message):
        """The perplexities so far."""

        def __init__(self, scores: list) -> None:
            super().__init__()
            self.scores = list(scores)

    class WorkEnded(Message):
        """The running work has ended (done, stopped or failed)."""

    def __init__(self, output: Path, parents: list[tuple[str, Path | None, str | None]]) -> None:
        """``output`` is the merge; ``parents`` are (label, folder, why it cannot be loaded or None)."""
        super().__init__()
        self.models = [(f"{output.name} (merge)", output, None), *parents]
        self.stop = threading.Event()
        self.running = False

    def compose(self) -> ComposeResult:
        yield Static(Text("Try the merge beside its parents", style="bold"), id="try-title")
        yield TextField(placeholder="a prompt, then enter: each model continues it", id="prompt")
        with Horizontal(id="panels"):
            for index, (label, _, _) in enumerate(self.models):
                panel = Static("", id=f"panel-{index}", classes="panel")
                panel.border_title = Text(label)
                yield panel
        yield TextField(placeholder="text file to score with ctrl+s (empty: the built-in sample)", id="text",
                        suggester=PathSuggester())  # fmt: skip
        table = DataTable(id="scores", cursor_type="none")
        table.add_columns("model", "perplexity", "tokens", "")
        yield table
        yield Static("", id="try-status")
        yield Footer(show_command_palette=False, compact=True)

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()
        for index, (_, _, reason) in enumerate(self.models):
            if reason:
                self._panel(index).update(Text(f"skipped: {reason}", style="dim"))

    def say(self, text: str) -> None:
        """Put ``text`` in the status line (as plain text: a path or a model's words may hold brackets)."""
        self.query_one("#try-status", Static).update(Text(text))

    def on_try_screen_said(self, message: Said) -> None:
        self.say(message.text)

    def on_try_screen_panel_shows(self, message: PanelShows) -> None:
        self._panel(message.index).update(message.text)

    def on_try_screen_scores_shown(self, message: ScoresShown) -> None:
        self._show_scores(message.scores)

    def on_try_screen_work_ended(self, message: WorkEnded) -> None:
        self.running = False

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failure the work did not expect (its own are said as they happen): said, and the screen free."""
        if event.state == WorkerState.ERROR and event.worker.group == "try":
            error = event.worker.error
            self.say(f"failed: {type(error).__name__}: {error}")
            self.running = False

    def action_help(self) -> None:
        """Show Try's help and every key it takes."""
        from tui_merge.tui.modals import HelpScreen
        from tui_merge.tui.step import step_keys

        self.app.push_screen(HelpScreen("Try the merge", self.HELP, step_keys(self)))

    def _panel(self, index: int) -> Static:
        return self.query_one(f"#panel-{index}", Static)

    @on(Input.Submitted, "#prompt")
    def prompt_given(self, event: Input.Submitted) -> None:
        prompt = event.value
        if not prompt.strip() or self.running:
            self.say("a prompt is being continued; escape stops it" if self.running else "type a prompt first")
            return
        for index, (_, _, reason) in enumerate(self.models):
            if not reason:
                self._panel(index).update("")
        self.stop.clear()
        self.running = True
        self.generate(prompt)

    @work(thread=True, exclusive=True, exit_on_error=False, group="try", description="continue a prompt")
    def generate(self, prompt: str) -> None:
        from tui_merge.evaluation.scoring import (
            continuation,
            free_memory,
            load_causal_model,
            resolve_device,
            skip_reason,
            text_streamer,
        )

        texts: dict[int, str] = {}
        with self._reporting():
            device = resolve_device("auto")
            for index, (label, folder, reason) in enumerate(self.models):
                if reason or folder is None:
                    continue
                why = skip_reason(folder)
                if why:
                    self.post_message(self.PanelShows(index, Text(f"skipped: {why}", style="dim")))
                    continue
                self.post_message(self.Said(f"continuing with {label}…"))
                texts[index] = ""

                def shown(piece: str, index: int = index) -> None:
                    texts[index] += piece
                    self.post_message(self.PanelShows(index, Text(texts[index])))

                model, tokenizer = load_causal_model(folder, device)
                try:
                    streamer = text_streamer(tokenizer, shown, self.stop)
                    continuation(model, tokenizer, prompt, MAX_NEW_TOKENS, streamer=streamer)
                finally:
                    del model
                    free_memory()
            self.post_message(self.Said("done: each model continued the prompt greedily" + self._samples_said()))

    def action_perplexity(self) -> None:
        if self.running:
            self.say("something is running; escape stops it")
            return
        self.stop.clear()
        self.running = True
        self.query_one("#scores", DataTable).clear()
        self.score(self.query_one("#text", Input).value.strip() or None)

    @work(thread=True, exclusive=True, exit_on_error=False, group="try", description="score the models")
    def score(self, text_path: str | None) -> None:
        from tui_merge.evaluation.sample_text import scored_text
        from tui_merge.evaluation.scoring import score_models

        loadable = [(label, folder) for label, folder, reason in self.models if not reason and folder is not None]
        with self._reporting():
            text = scored_text(text_path)
            scores = []
            for label, folder in loadable:
                self.post_message(self.Said(f"scoring {label}…"))
                progress = lambda model, done, total, label=label: self.post_message(  # noqa: E731
                    self.Said(f"scoring {label}: window {done}/{total}")
                )
                result = score_models([str(folder)], text, [], on_progress=progress, stop=self.stop)[0]
                scores.append((label, result))
                self.post_message(self.ScoresShown(scores))
            source = text_path or "the built-in sample"
            self.post_message(self.Said(f"perplexity on {source}: lower is better"))

    def _samples_said(self) -> str:
        """``; demo-base is an untrained sample...`` when some models are ``tui-merge demo``'s, else nothing."""
        from tui_merge.samples import is_sample_model

        samples = [label for label, folder, _ in self.models if folder is not None and is_sample_model(folder)]
        if not samples:
            return ""
        return f" ({', '.join(samples)}: untrained samples, their text is noise)"

    @contextmanager
    def _reporting(self) -> Iterator[None]:
        """Work in a worker thread: a stop or a failure is said in the status line, and the screen is free
        again afterwards."""
        from tui_merge.evaluation.scoring import Stopped

        try:
            yield
        except Stopped:
            self.post_message(self.Said("stopped"))
        except TuiMergeError as error:
            self.post_message(self.Said(error.message))
        except (RuntimeError, OSError, ValueError) as error:  # torch out of memory, a file gone, a bad config
            self.post_message(self.Said(f"failed: {type(error).__name__}: {error}"))
        finally:
            self.post_message(self.WorkEnded())

    def _show_scores(self, scores: list) -> None:
        table = self.query_one("#scores", DataTable)
        table.clear()
        values = [result.perplexity for _, result in scores if result.perplexity is not None]
        best = min(values) if len(values) > 1 else None
        for label, result in scores:
            if result.perplexity is None:
                table.add_row(Text(label), "-", "-", Text(f"skipped: {result.skipped}", style="dim"))
                continue
            lowest = result.perplexity == best
            style = "bold green" if lowest else ""
            table.add_row(Text(label), Text(f"{result.perplexity:.3f}", style=style), str(result.tokens),
                          Text("lowest" if lowest else "", style=style))  # fmt: skip

    def action_back(self) -> None:
        if self.running:
            self.stop.set()
            self.say("stopping…")
            return
        self.app.pop_screen()
