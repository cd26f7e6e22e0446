"""The wizard app: holds the state, moves between step screens, offers commands in the palette."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import cast

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.driver import Driver

from tui_merge.tui.hangup import Handover
from tui_merge.tui.modals import ChoiceScreen, ConfirmScreen, PathPrompt
from tui_merge.tui.step import STEP_NAMES, StepScreen
from tui_merge.wizard.reopening import load_state
from tui_merge.wizard.state import WizardState, free_name


def step_screens() -> list[type[StepScreen]]:
    """The step screen classes in order."""
    from tui_merge.tui.screens.analysis import AnalysisScreen
    from tui_merge.tui.screens.layers import LayersScreen
    from tui_merge.tui.screens.method import MethodScreen
    from tui_merge.tui.screens.models import ModelsScreen
    from tui_merge.tui.screens.output import OutputScreen
    from tui_merge.tui.screens.review import ReviewScreen
    from tui_merge.tui.screens.run import RunScreen

    return [ModelsScreen, AnalysisScreen, MethodScreen, LayersScreen, OutputScreen, ReviewScreen, RunScreen]


class StepCommands(Provider):
    """Command palette entries: jump to a step, load or save a config."""

    def _commands(self) -> list[tuple[str, Callable[[], None], str]]:
        app = cast("WizardApp", self.app)
        commands = [
            (f"Go to step {index + 1}: {name}", partial(app.jump_to, index), f"open the {name} step")
            for index, name in enumerate(STEP_NAMES[:-1])
        ]
        commands.append(("Save config", app.save_config, f"write the config to {app.state.config_path}"))
        commands.append(("Load config", app.ask_for_config, "reopen a saved merge config and review it"))
        commands.append(("Save as a stage", app.save_as_stage,
                         "add this merge to a multi-stage recipe as a stage later stages use by name"))  # fmt: skip
        return commands

    async def discover(self) -> Hits:
        for name, action, help_text in self._commands():
            yield DiscoveryHit(name, action, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), action, help=help_text)


class WizardApp(App):
    """From model selection to a finished, replayable merge, with the keyboard alone."""

    CSS_PATH = "wizard.tcss"
    TITLE = "tui-merge"
    COMMANDS = App.COMMANDS | {StepCommands}
    BINDINGS = [
        Binding("ctrl+q", "quit", "quit", tooltip="quit from anywhere (a running merge is asked about once)",
                priority=True, id="quit"),
        # Tab moves the focus as the app reads it, not once it has travelled up from the focused widget: keys
        # typed behind it go to the widget it moved to (``key_order``). No widget here takes tab for itself.
        Binding("tab", "focus_next", "next", tooltip="move to the next field or table", show=False, priority=True),
        Binding("shift+tab", "focus_previous", "previous", tooltip="move to the previous field or table", show=False,
                priority=True),
    ]  # fmt: skip

    def __init__(
        self,
        state: WizardState | None = None,
        start_step: int = 0,
        hint: str | None = None,
        cache_dir: Path | None = None,
        blink_cursor: bool = True,
    ) -> None:
        super().__init__()
        self.blink_cursor = blink_cursor
        """Text fields' cursors blink; off for screenshots that must come out the same every time."""
        self.state = state or WizardState()
        self.start_step = start_step
        self.hint = hint
        self.cache_dir = cache_dir
        """Hugging Face cache to list and resolve hub ids in; None for the default (HF_HUB_CACHE)."""
        self.handover: Handover | None = None
        """Set when the terminal hung up during a merge: what ``continue_headless`` finishes after the app."""
        self.terminal_gone = False
        """True once SIGHUP said the terminal is gone; from then on further hangups are ignored."""
        self.arrival_note: str | None = None
        """What Review says once its plan is ready, instead of "Ready." (the Search screen opening a trial)."""
        self.stage_recipe = "stages.yaml"
        """The multi-stage recipe "save as a stage" last wrote to, offered again."""

    def get_driver_class(self) -> type[Driver]:
        """Textual's own choice, except that on Linux and macOS its terminal driver is the one made safe for a
        terminal that hangs up (``tui.terminal_driver``)."""
        chosen = super().get_driver_class()
        if chosen.__module__ != "textual.drivers.linux_driver":  # that module needs termios: not on Windows
            return chosen
        from textual.drivers.linux_driver import LinuxDriver

        from tui_merge.tui.terminal_driver import HangupSafeDriver

        return HangupSafeDriver if chosen is LinuxDriver else chosen

    MIN_SIZE = (80, 24)
    """The smallest terminal every screen is drawn for; below it the wizard says so instead."""

    def on_resize(self, event) -> None:
        if self.open_steps:  # the first resize comes before the steps exist; on_mount covers that one
            self._fit_to(event.size.width, event.size.height)

    def _fit_to(self, width: int, height: int) -> None:
        """Cover the wizard with a plain sentence while the terminal is too small, and uncover it after."""
        from tui_merge.tui.modals import TooSmallScreen

        covering = next((screen for screen in self.screen_stack if isinstance(screen, TooSmallScreen)), None)
        too_small = width < self.MIN_SIZE[0] or height < self.MIN_SIZE[1]
        if too_small and covering is None:
            self.push_screen(TooSmallScreen())
        elif too_small:
            covering.say(width, height)
        elif covering is not None and self.screen is covering:
            self.pop_screen()

    def on_mount(self) -> None:
        self._heed_hangups(True)
        screens = step_screens()
        for index in range(self.start_step + 1):
            self.push_screen(screens[index]())
        self.call_after_refresh(lambda: self._fit_to(self.size.width, self.size.height))  # above the steps
        if self.hint:
            self.call_after_refresh(self.tell, self.hint)

    def on_unmount(self) -> None:
        self._heed_hangups(False)

    def _heed_hangups(self, heed: bool) -> None:
        """Handle SIGHUP while the app runs (unless it was ignored at start, as under nohup)."""
        if not hasattr(signal, "SIGHUP") or signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
            return
        loop = asyncio.get_running_loop()
        with suppress(NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, a side thread)
            if heed:
                loop.add_signal_handler(signal.SIGHUP, self.hung_up)
            else:
                loop.remove_signal_handler(signal.SIGHUP)  # which restores the default: death by the signal
                if self.terminal_gone:  # a second hangup before the headless path takes over must not kill it
                    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def hung_up(self) -> None:
        """The terminal is gone: a running merge is stopped keeping its finished shards and handed to the
        headless path (``tui.hangup``); the app leaves either way, instead of dying by the signal's default."""
        from tui_merge.tui.screens.run import RunScreen
        from tui_merge.tui.terminal_driver import HangupSafeDriver

        self.terminal_gone = True
        if isinstance(self._driver, HangupSafeDriver):
            self._driver.terminal_gone = True
        run = next((screen for screen in self.open_steps if isinstance(screen, RunScreen)), None)
        if run is not None and run.merging and not run.finished:
            run.control.stop(keep_partial=True)
            self.handover = run.handover
        self.exit()

    @property
    def open_steps(self) -> list[StepScreen]:
        """The step screens on the stack, the first step first (dialogs and Textual's own screen left out)."""
        return [screen for screen in self.screen_stack if isinstance(screen, StepScreen)]

    async def action_quit(self) -> None:
        """Quit at once, from any step or dialog; while a merge runs, ask once, then stop it cleanly and quit."""
        from tui_merge.tui.screens.run import RunScreen

        run = next((screen for screen in self.open_steps if isinstance(screen, RunScreen)), None)
        if run is None or run.merged or not run.merging:
            self.exit()
            return
        if run.cancel_question is not None or run.control.stopped:  # asked already: this is the answer
            run.answer_cancel_question(True)
            run.control.stop()  # even when the question's answer, typed just before, was no
            run.quit_when_stopped()
            return
        run.action_cancel(then_quit=True)

    def next_step(self, current: int) -> None:
        """Open the step after ``current``."""
        screens = step_screens()
        if current + 1 < len(screens):
            self.push_screen(screens[current + 1]())

    def previous_step(self, current: int) -> None:
        """Close the current step; on the first one, ask before quitting."""
        if current > 0 and len(self.open_steps) > 1:
            self.pop_screen()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.exit()

        self.push_screen(ConfirmScreen("Leave the wizard? Nothing has been written."), answered)

    def jump_to(self, step: int) -> None:
        """Go straight to a step, keeping the steps before it underneath (for escape)."""
        screens = step_screens()
        while len(self.open_steps) > 1:
            self.pop_screen()
        for index in range(1, step + 1):
            self.push_screen(screens[index]())

    def ask_for_config(self) -> None:
        """Ask for a config file and load it."""

        def answered(path: str | None) -> None:
            if path:
                self.load_config(path)

        self.push_screen(PathPrompt("Load a merge config (YAML)", (".yaml", ".yml")), answered)

    def load_config(self, path: str) -> None:
        """Replace the wizard's state with a saved config's and show its review step."""
        from tui_merge.errors import TuiMergeError

        try:
            state = load_state(path, self.cache_dir)
        except TuiMergeError as error:
            self.tell(error.message, error=True)
            return
        self.state = state
        self.jump_to(len(STEP_NAMES) - 2)
        self.call_after_refresh(self.tell, f"Loaded {path}; escape goes back through the steps to edit it.")

    def tell(self, text: str, *, error: bool = False) -> None:
        """Say ``text`` in the status line of the step shown (under any dialog over it), never in a toast that
        would cover that line or the dialog."""
        from tui_merge.tui.step import StepScreen

        step = next((screen for screen in reversed(self.screen_stack) if isinstance(screen, StepScreen)), None)
        if step is not None:
            step.status(text, error=error)

    def save_config(self) -> None:
        """Write the current config to its path and say where (asking first if that would replace another)."""
        from tui_merge.errors import TuiMergeError

        def write() -> None:
            try:
                self.state.loaded_config()
                Path(self.state.config_path).write_text(self.state.config_text(), encoding="utf-8")
                self.state.config_read = self.state.config_text()
            except (TuiMergeError, OSError) as error:
                self.tell(getattr(error, "message", str(error)), error=True)
                return
            self.tell(f"Saved {self.state.config_path}")

        self.claim_config_path(write)

    def save_as_stage(self) -> None:
        """Write the config as a stage of a multi-stage recipe (``tui.stage_dialog``)."""
        from tui_merge.tui.stage_dialog import save_as_stage

        save_as_stage(self)

    def claim_config_path(self, then: Callable[[], None]) -> None:
        """Run ``then`` once the config path may be written: it is free, holds this config already, holds what
        this session read or wrote there (a reopened config, saved back), or the person chose to replace it or to
        save under a new name (an earlier merge's recipe, or a file changed on disk since, is never lost without
        asking)."""
        path = Path(self.state.config_path)
        try:
            held = path.read_text(encoding="utf-8") if path.is_file() else None
            taken = held is not None and held not in (self.state.config_text(), self.state.config_read)
        except (OSError, UnicodeDecodeError):
            taken = path.exists()
        if not taken:
            then()
            return
        free = free_name(path)

        def answered(key: str | None) -> None:
            if key == "n":
                self.state.config_path = str(free)
                self.tell(f"The config will be saved as {free}.")
            if key in ("o", "n"):
                then()

        question = f"{path} already holds another config (an earlier merge's?). Replace it, or save as {free}?"
        self.push_screen(ChoiceScreen(question, [("o", "overwrite"), ("n", f"save as {free.name}")]), answered)
