"""Step 6: the exact YAML that will run, the command that replays it, and the plan."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui_merge.engine.plan import Plan, build_plan
from tui_merge.errors import TuiMergeError
from tui_merge.plan_view import plan_summary
from tui_merge.tui.messages import PlanReady, WorkFailed
from tui_merge.tui.step import StepScreen


def destination(output: str, config_path: str, replace: bool, leftover: str | None = None) -> Text:
    """Where the merge goes and where its config is saved, as the run will use them, and what is there now
    (an earlier merge it replaces, an interrupted one the Run step offers to resume, a run writing it)."""
    target = Path(output).expanduser()
    if target.exists():
        what = "exists; replaced once the merge has succeeded" if replace else "exists"
    else:
        what = "new folder"
    if leftover:
        what += f"; {leftover}"
    return Text.assemble(
        ("output ", "dim"), (output, "bold"), (f" ({what})", "dim"), ("   config ", "dim"), (config_path, "bold")
    )


def leftover_merge(output: Path, plan: Plan) -> tuple[str | None, bool | None]:
    """What another merge left at ``output`` in words, and whether the Run step can resume it: a run writing
    it now, or an interrupted merge in ``OUT.partial`` (resumable when its journal is this plan's)."""
    from tui_merge.engine.journal import Journal, plan_fingerprint
    from tui_merge.engine.lock import lock_holder, partial_path

    holder = lock_holder(output)
    if holder is not None:
        pid = f" (pid {holder})" if holder > 0 else ""
        return f"another tui-merge run{pid} is writing it now", None
    partial = partial_path(output)
    if not partial.is_dir():
        return None, None
    try:
        journal = Journal.load(partial)
    except TuiMergeError:
        return f"{partial.name} is left from an interrupted merge the run can only start over", False
    if journal.fingerprint != plan_fingerprint(plan):
        return (f"{partial.name} is left from a merge of another config or of inputs changed since, which the "
                "run can only start over"), False  # fmt: skip
    finished = len(journal.finished)
    return (
        f"{partial.name} holds this interrupted merge, {finished} shard(s) finished, which the run offers to resume",
        True,
    )


class ReviewScreen(StepScreen):
    """Review, save, then run."""

    STEP = 5
    HELP = (
        "This is the config the merge will run, exactly. ctrl+s saves it; the run "
        "saves it too. The command below replays it without the wizard and gives the "
        "same bytes. The plan says what will be read and written. ctrl+n merges.\n\n"
        "ctrl+g saves this merge as a stage of a multi-stage recipe instead: name the recipe file (added to when "
        "it exists) and the stage; a later stage of that recipe uses this merge by writing the stage's name where "
        "a model goes, and tui-merge run RECIPE OUT runs every stage in order.\n\n"
        "ctrl+f searches this recipe's values (tui-merge search): each trial merges and is scored, the trials "
        "show as they end, and enter on one opens its recipe here."
    )
    BINDINGS = [
        Binding("ctrl+s", "save", "save", tooltip="save the config now", id="save"),
        Binding("ctrl+g", "save_stage", "as stage", tooltip="save it as a stage of a multi-stage recipe",
                id="save-stage"),
        Binding("ctrl+f", "search", "search", tooltip="search this recipe's values for the best merge",
                id="search"),
    ]  # fmt: skip

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="review-scroll"):
            yield Static(id="destination")
            yield Static(id="yaml")
            yield Static(id="command")
            yield Static("planning…", id="plan")

    def on_mount(self) -> None:
        state = self.state
        self.planned = False
        self.failed = False
        state.leftover_resumable = None
        where = destination(state.output, state.config_path, state.replace_output)
        self.query_one("#destination", Static).update(where)
        self.query_one("#yaml", Static).update(Syntax(state.config_text(), "yaml", theme="ansi_dark", word_wrap=True))
        command = f"tui-merge run {state.config_path} {state.output}"
        self.query_one("#command", Static).update(Text.assemble(("replay: ", "dim"), (command, "bold")))
        self.query_one("#review-scroll").focus()
        self.plan()

    @work(thread=True, exit_on_error=False, exclusive=True, group="plan", description="plan the merge")
    def plan(self) -> None:
        try:
            plan = build_plan(self.state.loaded_config(), self.state.job_models())
            lines = plan_summary(plan, Path(self.state.output))
            leftover, resumable = leftover_merge(Path(self.state.output).expanduser(), plan)
        except TuiMergeError as error:
            self.post_message(WorkFailed(error.message))
            return
        self.post_message(PlanReady(lines, leftover, resumable))

    def on_plan_ready(self, message: PlanReady) -> None:
        self.planned = True
        state = self.state
        state.leftover_resumable = message.resumable
        self.query_one("#plan", Static).update("\n".join(message.lines))
        where = destination(state.output, state.config_path, state.replace_output, message.leftover)
        self.query_one("#destination", Static).update(where)
        arrival, self.wizard.arrival_note = self.wizard.arrival_note, None
        if message.leftover:
            self.status(f"Ready, but {message.leftover}. ctrl+s saves the config, ctrl+n goes on.")
        elif arrival:
            self.status(arrival)  # why the person is here, said until they act (the plan came after it)
        else:
            self.status("Ready. ctrl+s saves the config, ctrl+n merges.")
        self.work_done()

    def on_work_failed(self, message: WorkFailed) -> None:
        self.failed = True
        self._next_requested = False
        self.query_one("#plan", Static).update(Text(message.message, style="bold red"))
        self.status("The config cannot run; go back (escape) and change it.", error=True)

    def action_save(self) -> None:
        self.wizard.save_config()

    def action_save_stage(self) -> None:
        self.wizard.save_as_stage()

    def action_search(self) -> None:
        from tui_merge.tui.screens.search import SearchScreen

        if self.planned:
            self.app.push_screen(SearchScreen(self.state))
        else:
            self.status("The config cannot run yet; a search needs one that plans.", error=True)

    def pending(self) -> str | None:
        return "Planning" if not self.planned and not self.failed else None

    def go_on(self) -> None:
        """Merge, once the config path is free or the person chose how to save it."""

        def merge() -> None:
            self.state.config_read = self.state.config_text()  # what the Run step writes there
            self.wizard.next_step(self.STEP)

        self.wizard.claim_config_path(merge)

    def problem(self) -> str | None:
        return None if self.planned else "The config cannot run; go back (escape) and change it."
