"""What the screens of mergekit's other tools share: a worker whose end is said in a status line, and F1 help."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static
from textual.worker import Worker, WorkerState


class ToolScreen(Screen):
    """A screen that runs one tool in a worker group ``GROUP``; its status line is ``#tool-status``."""

    GROUP: ClassVar[str] = "tool"
    HELP_TITLE: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    class Ended(Message):
        """The work ended: its summary, or why it did not finish."""

        def __init__(self, text: str, error: bool) -> None:
            super().__init__()
            self.text, self.error = text, error

    running = False

    def say(self, text: str, *, error: bool = False) -> None:
        """Put ``text`` in the status line (plain text: paths and prompts may hold brackets)."""
        self.query_one("#tool-status", Static).update(Text(text, style="bold red" if error else ""))

    def on_tool_screen_ended(self, message: Ended) -> None:
        self.running = False
        self.say(message.text, error=message.error)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A failure the work did not expect (its own are said as they happen): said, and the screen free."""
        if event.state == WorkerState.ERROR and event.worker.group == self.GROUP:
            self.running = False
            self.say(f"failed: {type(event.worker.error).__name__}: {event.worker.error}", error=True)

    def action_help(self) -> None:
        from tui_merge.tui.modals import HelpScreen
        from tui_merge.tui.step import step_keys

        self.app.push_screen(HelpScreen(self.HELP_TITLE, self.HELP, step_keys(self)))
