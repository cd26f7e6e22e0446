"""Step 2: the models side by side, every finding, and a choice for each fixable warning."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import RadioButton, RadioSet, Static

from tui_merge.compatibility.findings import CompatibilityReport, Finding
from tui_merge.errors import TuiMergeError
from tui_merge.report_view import findings_grid, models_table
from tui_merge.tui.messages import ReportReady, WorkFailed
from tui_merge.tui.step import StepScreen

_CHOICES_FOR = {"vocab_size": ("truncate", "pad", "union"), "token_order": ("position", "union")}
"""Vocabulary fixes offered per finding; ``position`` keeps rows as they are (only when the sizes agree)."""


def verdict(report: CompatibilityReport) -> Text:
    """The report in a line, and every error in full, for the top of the screen (details scroll below)."""
    errors = [finding for finding in report.findings if finding.severity == "error"]
    warnings = sum(finding.severity == "warning" for finding in report.findings)
    if not errors:
        noted = f"; {warnings} warning{'s' * (warnings != 1)} below" if warnings else ""
        return Text.assemble(("Mergeable", "bold green"), noted, ". ctrl+n goes on.")
    count = "1 error blocks" if len(errors) == 1 else f"{len(errors)} errors block"
    verdict = Text.assemble((f"{count} the merge", "bold red"), " (escape goes back to change the models):")
    for error in errors:
        verdict.append(f"\n• {error.message}")
    return verdict


class AnalysisScreen(StepScreen):
    """The compatibility report, computed in the background (it reads one tensor per model)."""

    STEP = 1
    HELP = (
        "The models side by side and every finding about merging them. Values that "
        "differ from the base are highlighted. Errors block the merge: go back "
        "(escape) and remove or replace the model they name. When vocabularies "
        "differ, choose how to reconcile them with the arrow keys and enter: "
        "truncate cuts to the base's rows, pad grows to the largest with mean rows, "
        "union merges the tokenizers and matches rows by token (the default when "
        "every model has a tokenizer). When only the token order differs, union "
        "matches rows by token and position keeps them as they are."
    )

    def compose_body(self) -> ComposeResult:
        yield Static("Analysing…", id="verdict")
        with VerticalScroll(id="report-scroll"):
            yield Static("", id="report")

    def on_mount(self) -> None:
        self.report = None
        self.failed = False
        self.analyse()

    @work(thread=True, exit_on_error=False, exclusive=True, group="analysis", description="compatibility report")
    def analyse(self) -> None:
        try:
            report = self.state.report()
        except TuiMergeError as error:
            self.post_message(WorkFailed(error.message))
            return
        self.post_message(ReportReady(report))

    async def on_report_ready(self, message: ReportReady) -> None:
        self.report = message.report
        self.query_one("#verdict", Static).update(verdict(self.report))
        # The errors are in full at the top (they decide the step); below the table come the other findings.
        below = findings_grid(self.report, errors=False)
        self.query_one("#report", Static).update(Group(models_table(self.report), "", below))
        vocab = next((finding for finding in self.report.findings if finding.code in _CHOICES_FOR), None)
        if vocab is not None:
            await self._offer_vocab_choices(vocab)
        else:
            self.state.vocab = None
        self.work_done()

    async def _offer_vocab_choices(self, finding: Finding) -> None:
        """Radio buttons for the fixes of a vocabulary finding; union is the default when it can be done."""
        offered = _CHOICES_FOR[finding.code]
        union_possible = not any(fix.key == "union" and fix.summary.startswith("not possible") for fix in finding.fixes)
        current = self.state.vocab
        if current not in offered or (current == "union" and not union_possible):
            current = "union" if union_possible else "pad" if "pad" in offered else "position"
        self.state.vocab = current
        buttons = [
            RadioButton(
                choice, value=choice == current, id=f"vocab-{choice}", disabled=choice == "union" and not union_possible
            )
            for choice in offered
        ]
        choices = RadioSet(*buttons, id="vocab")
        choices.border_title = "vocabulary fix"
        await self.query_one("#report-scroll", VerticalScroll).mount(choices)

    def on_work_failed(self, message: WorkFailed) -> None:
        self.failed = True
        self._next_requested = False
        self.status(message.message, error=True)

    @on(RadioSet.Changed, "#vocab")
    def vocab_chosen(self, event: RadioSet.Changed) -> None:
        self.state.vocab = str(event.pressed.id).removeprefix("vocab-")

    def pending(self) -> str | None:
        return "Analysing" if self.report is None and not self.failed else None

    def problem(self) -> str | None:
        if self.report is None:
            return "The analysis failed; go back (escape) and change the models."
        errors = sum(finding.severity == "error" for finding in self.report.findings)
        if errors:  # each is in full at the top of the step
            return f"Cannot merge: the error{'s' * (errors > 1)} above block{'s' * (errors == 1)} it; escape goes back."
        return None
