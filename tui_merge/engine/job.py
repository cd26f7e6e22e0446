"""One merge, whichever front end starts it: save the config, plan, check the output, merge, verify.

``tui-merge run``, the one-off commands, the plain wizard and the wizard's
Run step all call ``run_job`` and differ only in how they show its events
and when they cancel. A step that every merge must take (a compatibility
gate, a lock on the output) is added here, once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tui_merge.compatibility.check import check_compatibility
from tui_merge.config.loading import LoadedConfig
from tui_merge.config.validation import unweighted_models
from tui_merge.engine.control import MergeControl
from tui_merge.engine.download import check_download_space, download, needed_files, refusal
from tui_merge.engine.events import CheckDone, EventCallback, Log, MergeSummary, VerificationStarted, Verified
from tui_merge.engine.lock import OutputLock
from tui_merge.engine.output_config import output_config_gate
from tui_merge.engine.plan import Plan, build_plan
from tui_merge.engine.preflight import check_output, check_output_path, check_output_safety
from tui_merge.engine.prepare import inspect_models
from tui_merge.engine.verification import VerifyReport, verify_output
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo


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
    allow_crimes: bool = False
    """Merge across an architecture or lineage finding on purpose (mergekit's ``--allow-crimes``)."""
    download: bool = False
    """Fetch the weight files the merge reads that are on the Hub, not in the cache (``engine.download``);
    without it such a merge is refused, saying what it would fetch."""


@dataclass(frozen=True)
class JobResult:
    """What a finished job produced."""

    summary: MergeSummary
    report: VerifyReport | None
    """The verification, when the job asked for one."""


CRIMES = frozenset({"architecture", "lineage"})
"""Error-level findings ``--allow-crimes`` lets a person merge across. Shapes that differ cannot merge at all,
and models of different depth only by layer stacking (slices), so those stay errors whatever the flag."""


def plan_job(job: MergeJob) -> Plan:
    """The job's plan (models inspected when the job brings none), once the models pass the compatibility
    gate; raises BadInputError before anything is written. The gate's warnings go into the model card."""
    models = job.models if job.models is not None else inspect_models(job.loaded)
    warnings = compatibility_gate(job, models)
    plan = build_plan(job.loaded, models)
    warnings += output_config_gate(plan)
    return dataclasses.replace(plan, warnings=tuple(warnings))


def compatibility_gate(job: MergeJob, models: dict[str, ModelInfo]) -> list[str]:
    """The findings ``tui-merge inspect`` would show for the config's models: the first error that blocks the
    merge is raised (exit 2, nothing written); the warnings are returned, one sentence each.

    A ``slices:`` config stacks layers, so models of different depth are fine there; a ``models:`` merge of
    different depths never is. With ``allow_crimes`` an architecture or lineage error is a warning instead.
    """
    config = job.loaded.config
    names = config.referenced_models()
    infos = [models[name] for name in names]
    base = models[config.base_model] if config.base_model else infos[0]
    method = config.merge_method if config.slices is None else "passthrough"
    report = check_compatibility(infos, base=base, method=method)
    warnings = []
    for finding in report.findings:
        if finding.severity == "error" and not (job.allow_crimes and finding.code in CRIMES):
            hint = " Pass --allow-crimes to merge them anyway." if finding.code in CRIMES else ""
            raise BadInputError(f"{job.loaded.source}: cannot merge: {finding.message}{hint}")
        if finding.severity == "error":
            warnings.append(f"{finding.message} Merged anyway (--allow-crimes).")
        elif finding.severity == "warning":
            warnings.append(finding.message)
    return warnings


def run_job(job: MergeJob, *, on_event: EventCallback | None = None, control: MergeControl | None = None) -> JobResult:
    """Run every step of ``job``, reporting to ``on_event``; ``control`` pauses or stops the merge.

    Raises the step's ``TuiMergeError`` (each carries its exit code) when one fails; nothing is left at
    the output path then, only ``OUT.partial`` when the job keeps it for a resume.
    """
    check_output_safety(job.output, force=job.replace)
    with OutputLock(job.output) as lock:
        return _run_locked(job, lock, on_event or (lambda event: None), control)


def _run_locked(job: MergeJob, lock: OutputLock, emit: EventCallback, control: MergeControl | None) -> JobResult:
    """``run_job`` once it holds the output's lock: nothing another run could race with is checked before."""
    check_output_path(job.loaded, job.output, force=job.replace, resume=job.resume)
    if job.save_config is not None:
        job.save_config.write_text(job.loaded.text, encoding="utf-8")
    plan = plan_job(job)
    for warning in plan.warnings:
        emit(Log("warning", f"warning: {warning}"))
    weighted, unweighted = unweighted_models(job.loaded)
    if unweighted and not weighted:
        emit(Log("info", f"no model gives a weight: {len(unweighted)} models merged with equal weights"))
    check_output(plan, job.output, force=job.replace, resume=job.resume)
    needed = needed_files(ref.entry for task in plan.tasks for ref in task.reads)
    if needed:
        if not job.download:
            raise BadInputError(refusal(needed))
        check_download_space(needed, job.output, plan.bytes_to_write)
        download(needed, emit=emit, control=control)
    from tui_merge.engine import executor  # torch comes with it: mistakes in the inputs are said before

    summary = executor.execute(
        plan, job.output, on_event=emit, control=control, replace=job.replace, resume=job.resume,
        keep_partial=job.keep_partial, allow_nonfinite=job.allow_nonfinite, lock=lock,
    )  # fmt: skip
    report = None
    if job.verify:
        emit(VerificationStarted(job.output))
        report = verify_output(job.output, on_check=lambda check: emit(CheckDone(check)))
        emit(Verified(report))
    return JobResult(summary, report)
