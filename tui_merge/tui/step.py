"""What every wizard step shares: the step bar, keys to move between steps, help and a status line."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui_merge.wizard.state import WizardState

if TYPE_CHECKING:
    from tui_merge.tui.app import WizardApp

STEP_NAMES = ("Models", "Analysis", "Method", "Layers", "Output", "Review", "Run")


class StepScreen(Screen):
    """A wizard step. Subclasses compose their body and say whether the user may go on."""

    STEP: ClassVar[int] = 0
    HELP: ClassVar[str] = ""
    _next_requested = False
    """ctrl+n was pressed while the step's background work ran."""
    BINDINGS = [
        Binding("escape", "back", "back", id="back"),
        Binding("ctrl+n", "next", "next", id="next"),
        Binding("f1", "help", "help", tooltip="this help, with every key of the step", id="help"),
    ]

    @property
    def wizard(self) -> WizardApp:
        """The app, typed."""
        return cast("WizardApp", self.app)

    @property
    def state(self) -> WizardState:
        """The merge being built."""
        return self.wizard.state

    def compose(self) -> ComposeResult:
        yield Static(self._step_bar(), id="steps")
        yield from self.compose_body()
        yield Static("", id="status")
        yield Footer(show_command_palette=False, compact=True)

    def compose_body(self) -> ComposeResult:
        """The step's own widgets."""
        yield from ()

    def _step_bar(self) -> Text:
        bar = Text()
        for index, name in enumerate(STEP_NAMES):
            style = "bold reverse" if index == self.STEP else ("" if index < self.STEP else "dim")
            bar.append(f" {index + 1} {name} ", style=style)
        return bar

    def status(self, text: str, *, error: bool = False) -> None:
        """Show one line under the body (red for a problem)."""
        status = self.query_one("#status", Static)
        status.update(Text(text, style="bold red" if error else "dim"))
        # A second layout once this one is drawn: when a text arrives while the layout for the one before is still
        # pending, Textual can reuse the old line count and cut the new text to one line.
        self.call_after_refresh(status.refresh, layout=True)

    def problem(self) -> str | None:
        """Why the user cannot go on yet, or None."""
        return None

    def pending(self) -> str | None:
        """The background work the step waits for before it can judge itself (``analysing``), or None.

        A ctrl+n pressed meanwhile is kept, not lost: the step goes on by
        itself once ``work_done`` is called, if ``problem`` allows it then.
        """
        return None

    def work_done(self) -> None:
        """The step's background work has finished: go on if ctrl+n was pressed meanwhile."""
        if self._next_requested:
            self._next_requested = False
            self.action_next()

    def collect(self) -> None:
        """Copy what the step's fields hold into the state.

        Fields update the state as they change, but a key typed ahead (ctrl+n
        right after the text, as a fast typist or a paste sends it) is handled
        before the fields' change messages, so a step reads its fields once
        more before it judges itself. Steps without typed fields have nothing
        to copy.
        """

    def action_next(self) -> None:
        """Go to the next step if this one is complete (once its background work is done)."""
        self.collect()
        waiting = self.pending()
        if waiting:
            self._next_requested = True
            self.status(f"{waiting}; going on when it is done.")
            return
        problem = self.problem()
        if problem:
            self.status(problem, error=True)
            return
        self.go_on()

    def go_on(self) -> None:
        """Open the next step; a step that must ask something first (replace a folder?) asks here."""
        self.wizard.next_step(self.STEP)

    def action_back(self) -> None:
        """Go back one step (on the first step: quit, after confirmation)."""
        self.wizard.previous_step(self.STEP)

    def action_help(self) -> None:
        """Show this step's help and every key it takes."""
        from tui_merge.tui.modals import HelpScreen

        palette = "ctrl+p opens the command palette: go to a step, load or save a config. ctrl+q quits."
        title = f"{self.STEP + 1} {STEP_NAMES[self.STEP]}"
        self.app.push_screen(HelpScreen(title, f"{self.HELP}\n\n{palette}", step_keys(self)))


def step_keys(screen: Screen) -> list[tuple[str, str]]:
    """Every key a step takes, with what it does: its widgets' first, then the step's, then the app's.

    Only keys this program binds are listed (not Textual's own cursor keys),
    hidden ones included, since the footer has room for a few only.
    """
    nodes = [widget for widget in screen.walk_children() if type(widget).__module__.startswith("tui_merge.")]
    listed: dict[tuple[int, str], tuple[list[str], str]] = {}
    for node in [*nodes, screen, screen.app]:
        for cls in type(node).__mro__:
            if not cls.__module__.startswith("tui_merge.") or "BINDINGS" not in vars(cls):
                continue
            for binding in Binding.make_bindings(vars(cls)["BINDINGS"]):
                keys, _ = listed.setdefault((id(node), binding.action), ([], binding.tooltip or binding.description))
                shown = screen.app.get_key_display(binding)
                if shown not in keys:
                    keys.append(shown)
    return [(" ".join(keys), description) for keys, description in listed.values()]
