"""Step 2: the models side by side, every finding, and a choice for each fixable warning."""

from __future__ import annotations

from rich.console import Group
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import RadioButton, RadioSet, Static

from tui_merge.errors import TuiMergeError
from tui_merge.report_view import findings_grid, models_table
from tui_merge.tui.messages import ReportReady, WorkFailed
from tui_merge.tui.step import StepScreen

VOCAB_CHOICES = ("truncate", "pad")
"""Vocabulary fixes the engine performs today."""


class AnalysisScreen(StepScreen):
    """The compatibility report, computed in the background (it reads one tensor per model)."""

    STEP = 1
    HELP = (
        "The models side by side and every finding about merging them. Values that\n"
        "differ from the base are highlighted. Errors block the merge: go back\n"
        "(escape) and remove or replace the model they name. When vocabularies\n"
        "differ, choose truncate or pad with the arrow keys and space."
    )

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="report-scroll"):
            yield Static("Analysing…", id="report")
            yield RadioSet(*[RadioButton(choice, id=f"vocab-{choice}") for choice in VOCAB_CHOICES], id="vocab")

    def on_mount(self) -> None:
        self.query_one("#vocab", RadioSet).display = False
        self.report = None
        self.analyse()

    @work(thread=True, exit_on_error=False, exclusive=True, group="analysis", description="compatibility report")
    def analyse(self) -> None:
        try:
            report = self.state.report()
        except TuiMergeError as error:
            self.post_message(WorkFailed(error.message))
            return
        self.post_message(ReportReady(report))

    def on_report_ready(self, message: ReportReady) -> None:
        self.report = message.report
        self.query_one("#report", Static).update(Group(models_table(self.report), "", findings_grid(self.report)))
        vocab = next((finding for finding in self.report.findings if finding.code == "vocab_size"), None)
        choices = self.query_one("#vocab", RadioSet)
        choices.display = vocab is not None
        if vocab is not None:
            self.state.vocab = self.state.vocab or "pad"
            self.query_one(f"#vocab-{self.state.vocab}", RadioButton).value = True
            choices.border_title = "vocabulary fix"
        else:
            self.state.vocab = None
        errors = sum(finding.severity == "error" for finding in self.report.findings)
        self.status("Errors block the merge." if errors else "Mergeable. ctrl+n goes on.", error=bool(errors))

    def on_work_failed(self, message: WorkFailed) -> None:
        self.status(message.message, error=True)

    @on(RadioSet.Changed, "#vocab")
    def vocab_chosen(self, event: RadioSet.Changed) -> None:
        self.state.vocab = str(event.pressed.label)

    def problem(self) -> str | None:
        if self.report is None:
            return "Wait for the analysis to finish."
        errors = [finding for finding in self.report.findings if finding.severity == "error"]
        if errors:
            return f"Cannot merge: {errors[0].message}"
        return None
