"""One merge, whichever front end starts it: save the config, plan, check the output, merge, verify.

``tui-merge run``, the one-off commands, the plain wizard and the wizard's
Run step all call ``run_job`` and differ only in how they show its events
and when they cancel. A step that every merge must take (a compatibility
gate, a lock on the output) is added here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tui_merge.config.loading import LoadedConfig
from tui_merge.engine import executor
from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import CheckDone, EventCallback, MergeSummary, VerificationStarted, Verified
from tui_merge.engine.plan import Plan, build_plan
from tui_merge.engine.preflight import check_output
from tui_merge.engine.prepare import inspect_models
from tui_merge.models.info import ModelInfo
from tui_merge.verification import VerifyReport, verify_output


@dataclass(frozen=True)
class MergeJob:
    """What to merge, where, and how a stop is handled."""

    loaded: LoadedConfig
    output: Path
    models: dict[str, ModelInfo] | None = None
    """The config's models, inspected, by the names it gives them; None inspects them here."""
    save_config: Path | None = None
    """Write the config text here before anything else (the wizards save what they run)."""
    replace: bool = False
    """Replace an existing output folder, once the merge has succeeded."""
    resume: bool = False
    """Continue the interrupted merge in ``OUT.partial``."""
    keep_partial: bool = False
    """On a stop or an I/O error keep ``OUT.partial`` for a resume (command lines); else remove it (the wizard)."""
    allow_nonfinite: bool = False
    """Merge inputs that hold NaN or Inf."""
    verify: bool = False
    """Check the merged folder afterwards (``tui-merge verify``)."""


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced."""

    summary: MergeSummary
    report: VerifyReport | None
    """The verification, when the job asked for one."""


def plan_job(job: MergeJob) -> Plan:
    """The job's plan (models inspected when the job brings none); raises BadInputError before anything is written."""
    models = job.models if job.models is not None else inspect_models(job.loaded)
    return build_plan(job.loaded, models)


def run_job(job: MergeJob, *, on_event: EventCallback | None = None, control: MergeControl | None = None) -> JobResult:
    """Run every step of ``job``, reporting to ``on_event``; ``control`` pauses or stops the merge.

    Raises the step's ``TuiMergeError`` (each carries its exit code) when one fails; nothing is left at
    the output path then, only ``OUT.partial`` when the job keeps it for a resume.
    """
    emit = on_event or (lambda event: None)
    if job.save_config is not None:
        job.save_config.write_text(job.loaded.text, encoding="utf-8")
    plan = plan_job(job)
    check_output(plan, job.output, force=job.replace, resume=job.resume)
    summary = executor.execute(
        plan, job.output, on_event=emit, control=control, replace=job.replace, resume=job.resume,
        keep_partial=job.keep_partial, allow_nonfinite=job.allow_nonfinite,
    )  # fmt: skip
    report = None
    if job.verify:
        emit(VerificationStarted(job.output))
        report = verify_output(job.output, on_check=lambda check: emit(CheckDone(check)))
        emit(Verified(report))
    return JobResult(summary, report)
