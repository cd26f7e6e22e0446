"""Save the wizard's merge as a stage of a multi-stage recipe (``tools.stages``), with the keyboard alone.

The dialog asks for the recipe file and the stage's name; the stage is the wizard's config with ``name: NAME``,
added to the file when it exists (a stage of that name is replaced only after the person confirms) or as a new
file. A later stage of the recipe uses this merge by writing NAME where a model goes, and ``tui-merge run FILE
OUT`` runs them all. The merge the wizard runs itself is unchanged: this only writes the recipe.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from tui_merge.errors import TuiMergeError
from tui_merge.tools.stages import add_stage, has_stage, stage_name_problem, write_recipe
from tui_merge.tui.fields import TextField
from tui_merge.tui.modals import ConfirmScreen, Dialog

if TYPE_CHECKING:
    from tui_merge.tui.app import WizardApp


def suggested_name(output: str) -> str:
    """A stage name from the output folder's name (``./merged/chat-slerp`` -> ``chat-slerp``)."""
    word = re.sub(r"[^\w.-]+", "-", Path(output.rstrip("/") or "merge").name).strip("-.~") or "merge"
    return word


class StageDialog(Dialog[tuple[str, str] | None]):
    """Ask for the recipe file and the stage name; enter in the name field answers, escape cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, recipe: str, name: str) -> None:
        super().__init__()
        self.recipe, self.name_suggested = recipe, name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text("Save this merge as a stage of a multi-stage recipe", style="bold"))
            yield Label("recipe file (added to it when it exists)")
            yield TextField(self.recipe, id="recipe", compact=True)
            yield Label("stage name (later stages use it as a model)")
            yield TextField(self.name_suggested, id="stage-name", compact=True)
            yield Static("", id="stage-problem")
            yield Label(Text("tab moves   enter saves   escape cancels", style="dim"))

    def on_mount(self) -> None:
        self.query_one("#stage-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        recipe = self.query_one("#recipe", Input).value.strip()
        name = self.query_one("#stage-name", Input).value.strip()
        problem = "Name the recipe file." if not recipe else stage_name_problem(name)
        if problem:
            self.query_one("#stage-problem", Static).update(Text(problem, style="bold red"))
            return
        self.dismiss((recipe, name))


def save_as_stage(app: WizardApp) -> None:
    """Ask, then write the wizard's config as a stage; every outcome is said in the step's status line."""
    state = app.state

    def answered(answer: tuple[str, str] | None) -> None:
        if answer is None:
            return
        recipe, name = answer
        app.stage_recipe = recipe
        path = Path(recipe).expanduser()
        try:
            state.loaded_config()  # a config that would not run is said now, not written
            earlier = path.read_text(encoding="utf-8") if path.exists() else ""
        except (TuiMergeError, OSError, UnicodeDecodeError) as error:
            app.tell(getattr(error, "message", str(error)), error=True)
            return
        if has_stage(earlier, name):
            question = f"{recipe} has a stage {name} already. Replace it with this merge?"
            app.push_screen(ConfirmScreen(question), lambda yes: write(path, earlier, name) if yes else None)
            return
        write(path, earlier, name)

    def write(path: Path, earlier: str, name: str) -> None:
        try:
            write_recipe(path, add_stage(earlier, state.config_text(), name, str(path), replace=True))
        except (TuiMergeError, OSError) as error:
            app.tell(getattr(error, "message", str(error)), error=True)
            return
        app.tell(f"Saved stage {name} into {path}; later stages use it as model {name}; "
                 f"tui-merge run {path} OUT runs them all.")  # fmt: skip

    app.push_screen(StageDialog(app.stage_recipe, suggested_name(state.output)), answered)
