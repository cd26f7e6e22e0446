"""Step 7: the merge, in a worker thread, with progress, log, cancel and a summary."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import ProgressBar, RichLog, Static
from textual.worker import Worker, WorkerState

from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import (
    CheckDone,
    DownloadProgress,
    FileDownloaded,
    Log,
    MergeFailed,
    MergeFinished,
    MergeStarted,
    ShardWritten,
    TensorMerged,
    VerificationStarted,
    Verified,
)
from tui_merge.engine.job import MergeJob, run_job
from tui_merge.engine.lock import lock_holder, partial_path
from tui_merge.engine.verification import VerifyReport, check_line
from tui_merge.errors import TuiMergeError
from tui_merge.tui.following_log import FollowingLog
from tui_merge.tui.hangup import Handover
from tui_merge.tui.messages import EngineEvent, WorkFailed
from tui_merge.tui.modals import ChoiceScreen, ConfirmScreen, ErrorScreen
from tui_merge.tui.step import StepScreen
from tui_merge.units import human_bytes


class RunScreen(StepScreen):
    """Runs the same planner and executor as ``tui-merge run`` on the saved config."""

    STEP = 6
    HELP = (
        "The merge runs in the background. escape pauses it at once and asks whether to cancel: yes "
        "stops it and leaves nothing at the output folder, no lets it go on. ctrl+q asks the same and then "
        "quits. When it is "
        "done, the output is verified (tui-merge verify: every tensor finite, config "
        "and tokenizer consistent with the weights, the architecture takes every "
        "tensor) and the summary says where the model and the config are. Then t opens Try: a prompt's "
        "continuation by the merge and by each parent side by side, and their perplexity on a text."
    )
    BINDINGS = [
        Binding("escape", "cancel", "cancel", tooltip="pause the merge and ask whether to cancel it", id="cancel"),
        Binding("escape", "back", "back", tooltip="back to the review, to change and merge again", id="back"),
        Binding("t", "try_merge", "try", tooltip="try the merge: prompts and perplexity beside its parents"),
    ]

    merged = reactive(False, bindings=True)
    """True once the output is complete (verification may still run): nothing is left to cancel."""
    finished = reactive(False, bindings=True)
    """True once the merge and its verification have ended, well or not: escape goes back."""
    succeeded = reactive(False, bindings=True)
    """True once the merge is complete and verified: t tries it."""

    def compose_body(self) -> ComposeResult:
        yield Static("", id="run-title")
        yield ProgressBar(id="progress", show_eta=True)
        yield Static("", id="current")
        yield FollowingLog(id="log")

    def on_mount(self) -> None:
        self.control = MergeControl()
        self.started = time.monotonic()
        self.downloaded = False
        """True once a file came from the Hub for this merge."""
        self.cancel_question: ConfirmScreen | None = None
        """The open "cancel the merge?" question, until it is answered."""
        self.merging = False
        """True once the merge has been started (an interrupted merge's question may come first)."""
        self.handover = Handover(self.state)
        """What the app hands to the headless path if the terminal hangs up (the merge thread sets its events)."""
        state = self.state
        self.query_one("#run-title", Static).update(Text(f"Merging into {state.output}", style="bold"))
        on_hub = [info.label for info in state.infos.values() if not info.downloaded]
        if on_hub and not state.download:
            self.ask_about_download(on_hub)
        else:
            self.begin()

    def begin(self) -> None:
        """Ask about a leftover partial output, or start the merge."""
        partial = partial_path(Path(self.state.output).expanduser())
        if partial.is_dir() and lock_holder(Path(self.state.output).expanduser()) is None:
            self.ask_about_leftover(partial)
        else:
            self.start_merge()

    def ask_about_download(self, on_hub: list[str]) -> None:
        """Some weights are on the Hub: download the files the merge reads (``run --download``), or go back.
        The default (escape) downloads nothing."""

        def answered(key: str | None) -> None:
            if key == "d":
                self.state.download = True
                self.begin()
            else:
                self.wizard.previous_step(self.STEP)

        names = ", ".join(on_hub)
        question = (
            f"The weights of {names} are on the Hub, not in the local cache. Download the files this merge reads "
            "(only those, each checked against the Hub's sha256) into the Hugging Face cache?"
        )
        self.app.push_screen(ChoiceScreen(question, [("d", "download")]), answered)

    def start_merge(self, resume: bool = False) -> None:
        """Start the merge's worker (resuming ``OUT.partial`` with ``resume``)."""
        self.merging = True
        self.merge(resume)

    def ask_about_leftover(self, partial: Path) -> None:
        """An interrupted merge is in ``OUT.partial``: resume it (what ``run --resume`` writes) or start over."""

        def answered(key: str | None) -> None:
            if key == "r":
                self.start_merge(resume=True)
            elif key == "s":
                shutil.rmtree(partial, ignore_errors=True)
                self.start_merge()
            else:
                self.wizard.previous_step(self.STEP)

        if self.state.leftover_resumable is False:
            question = (f"{partial} is left from a merge of another config (or of inputs changed since), so it "
                        "cannot be resumed. Start over (it is removed)?")  # fmt: skip
            answers = [("s", "start over")]
        else:
            question = (f"{partial} holds an interrupted merge. Resume it (the finished shards are checked and "
                        "kept: the same bytes as tui-merge run --resume), or start over (it is removed)?")  # fmt: skip
            answers = [("r", "resume"), ("s", "start over")]
        self.app.push_screen(ChoiceScreen(question, answers), answered)

    @work(thread=True, exit_on_error=False, exclusive=True, group="merge", description="merge")
    def merge(self, resume: bool = False) -> None:
        state = self.state
        try:
            job = MergeJob(
                state.loaded_config(), Path(state.output), models=state.job_models(),
                save_config=Path(state.config_path), replace=state.replace_output, verify=True, resume=resume,
                download=state.download,
            )  # fmt: skip
            run_job(job, on_event=lambda event: self.post_message(EngineEvent(event)), control=self.control)
            self.handover.completed.set()
        except (TuiMergeError, OSError) as error:
            self.post_message(WorkFailed(getattr(error, "message", None) or str(error)))
        finally:
            self.handover.ended.set()

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        log = self.query_one("#log", RichLog)
        if isinstance(event, DownloadProgress):
            self.query_one("#progress", ProgressBar).update(total=event.bytes_total, progress=event.bytes_done)
            self.query_one("#current", Static).update(
                f"downloading {event.index}/{event.count} · {human_bytes(event.received)} of "
                f"{human_bytes(event.size)} · {event.repo_id}/{event.file}"
            )
        elif isinstance(event, FileDownloaded):
            self.downloaded = True
            log.write(f"downloaded {event.repo_id}/{event.file} ({human_bytes(event.size)}), sha256 checked")
        elif isinstance(event, MergeStarted):
            if self.downloaded:  # the merge's rate counts from its own start, not the download's
                self.started = time.monotonic()
            self.query_one("#progress", ProgressBar).update(total=event.plan.bytes_to_write, progress=0)
            log.write(f"merging {len(event.plan.tasks)} tensors ({human_bytes(event.plan.bytes_to_write)})")
        elif isinstance(event, TensorMerged):
            self.query_one("#progress", ProgressBar).update(progress=event.bytes_done)
            rate = event.bytes_done / max(time.monotonic() - self.started, 1e-9)
            self.query_one("#current", Static).update(
                f"{event.index}/{event.total} tensors · {human_bytes(int(rate))}/s · {event.name}"
            )
        elif isinstance(event, ShardWritten):
            log.write(f"wrote {event.path.name} ({human_bytes(event.size)})")
        elif isinstance(event, Log):
            log.write(event.text)
        elif isinstance(event, MergeFinished):
            self._merged()
            summary = event.summary
            log.write(
                f"done in {summary.seconds:.1f} s: {summary.tensors} tensors, {human_bytes(summary.bytes_written)} "
                f"in {summary.output}; config saved as {self.state.config_path}"
            )
        elif isinstance(event, MergeFailed):
            log.write(f"stopped: {event.message}")
        elif isinstance(event, VerificationStarted):
            log.write("verifying the output (tui-merge verify)…")
            self.status(f"Merged into {event.folder}; verifying it. ctrl+q quits.")
        elif isinstance(event, CheckDone):
            check = event.check
            log.write(f"  {check_line(check)}")  # the words of tui-merge verify
        elif isinstance(event, Verified):
            self._verified(event.report)

    def _verified(self, report: VerifyReport) -> None:
        self._finish()
        replay = f"tui-merge run {self.state.config_path} {report.folder}"
        self.query_one("#log", RichLog).write(Text.assemble("replay: ", (replay, "bold")))
        if report.ok:
            self.succeeded = True
            self.status(f"Merged into {report.folder} and verified; t tries it. Replay it without the wizard: "
                        f"{replay}")  # fmt: skip
        else:
            failed = ", ".join(check.name for check in report.checks if check.outcome == "failed")
            self.status(f"Merged into {report.folder}, but verification failed ({failed}); see the log.", error=True)

    def _merged(self) -> None:
        """The output is complete: nothing is left to cancel (nor time to estimate), and an open cancel
        question says so."""
        self.merged = True
        self.query_one("#run-title", Static).update(Text(f"Merged into {self.state.output}", style="bold"))
        # The bar reads show_eta only when it is composed: its countdown is hidden here, or a finished merge showed
        # "--:--:--" or "00:00:00" as the last sample happened to fall.
        self.query_one("#progress", ProgressBar).query("#eta").set(display=False)
        if self.answer_cancel_question(False):
            self.say_finished_before_cancel()

    def _finish(self) -> None:
        """The merge and its verification have ended, well or not: escape goes back now."""
        self.merged = self.finished = True

    def on_work_failed(self, message: WorkFailed) -> None:
        self._finish()
        self.status(message.message, error=True)
        if self.control.stopped:  # cancelled: the screen says so everywhere, no bar or title of a merge left
            self.query_one("#run-title", Static).update(Text(message.message, style="bold"))
            self.query_one("#progress", ProgressBar).display = False
            self.query_one("#current", Static).update("")
            self.query_one("#log", RichLog).write(f"cancelled: {message.message}")
        else:
            self.app.push_screen(ErrorScreen(message.message))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self._finish()
            self.app.push_screen(ErrorScreen(f"The merge failed unexpectedly: {event.worker.error}"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":  # the last step: nothing comes next, so the key is not offered
            return False
        if action == "cancel":
            return not self.merged
        if action == "back":
            return self.finished
        if action == "try_merge":
            return self.succeeded
        return True

    def action_try_merge(self) -> None:
        from tui_merge.models.info import distinct_labels
        from tui_merge.tui.screens.try_merge import TryScreen

        state = self.state
        infos = [state.infos[name] for name in state.models]
        parents = [
            (label, info.folder, "it reads a LoRA adapter, which is applied only while merging" if info.source.adapter
             else None)
            for label, info in zip(distinct_labels(infos), infos)
        ]  # fmt: skip
        self.app.push_screen(TryScreen(Path(state.output), parents))

    def action_cancel(self, then_quit: bool = False) -> None:
        """Pause the merge at once and ask whether to cancel it (then quit, with ``then_quit``); no lets it go on."""
        if self.merged or self.cancel_question is not None:
            return
        self.control.pause()
        self.status("paused")

        def answered(yes: bool | None) -> None:
            self.cancel_question = None
            if self.merged:  # it ended while the question was open: nothing is left to cancel
                if yes and then_quit:
                    self.quit_when_stopped()
                elif yes:
                    self.say_finished_before_cancel()
                return
            if yes:
                self.control.stop()
                self.status("cancelling…")
                if then_quit:
                    self.quit_when_stopped()
            else:
                self.control.resume()
                self.status("")

        question = "Cancel the merge and quit?" if then_quit else "Cancel the merge?"
        self.cancel_question = ConfirmScreen(
            f"{question} It is paused while you decide; nothing will be left at the output folder.",
            name="cancel-merge",
        )
        self.app.push_screen(self.cancel_question, answered)

    def answer_cancel_question(self, yes: bool) -> bool:
        """Answer the open cancel question, unless another dialog covers it; True when this answered it."""
        question = self.cancel_question
        if question is None or not question.is_active:
            return False
        question.dismiss(yes)
        return True

    def say_finished_before_cancel(self) -> None:
        self.app.push_screen(
            ErrorScreen(f"The merge finished before it could be cancelled; it is in {self.state.output}.",
                        title="Merge finished"))  # fmt: skip

    @work(exclusive=True, group="quit", description="quit once the merge has stopped")
    async def quit_when_stopped(self) -> None:
        """Quit once the merge thread has ended, saying in the shell what became of it: exit status 130 when
        it stopped, 0 when it had passed its last checkpoint and finished all the same."""
        # The thread's own event, not its worker: a worker can be cancelled while its thread runs on.
        while self.merging and not self.handover.ended.is_set():
            await asyncio.sleep(0.02)
        state = self.state
        if self.handover.completed.is_set():
            said = (
                f"tui-merge: the merge finished before it could be cancelled; it is in {state.output}. The config "
                f"is saved as {state.config_path}."
            )
            self.app.exit(return_code=0, message=said)
            return
        said = (
            f"tui-merge: merge cancelled; nothing was written at {state.output}. The config is saved as "
            f"{state.config_path}: tui-merge run {state.config_path} {state.output} runs it."
        )
        self.app.exit(return_code=130, message=said)

    def problem(self) -> str | None:
        return "This is the last step." if self.finished else "The merge is running."
