"""One trial of a search, where it runs (a worker process here, or a Ray task on another node): merge the trial's
recipe into a scratch folder, score it by each objective, remove the merge unless it is to be kept.

Only plain data goes in (``TrialJob``) and comes back (``TrialOutcome``): the study stays with the search that
started it, and a worker needs nothing but the models its recipe names (a hub id is resolved in the worker's own
cache, a folder must exist on the worker's node).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tui_merge.search.objectives import Objective, TrialFailed, measure


@dataclass(frozen=True)
class TrialJob:
    """What a worker needs to run one trial."""

    number: int
    text: str
    """The trial's recipe."""
    objectives: tuple[Objective, ...]
    scratch: str | None
    """Where to merge (``trial-N`` beside the study); None on a Ray worker: a folder in its node's temp space."""
    device: str = "auto"
    keep: bool = False
    """Leave the merged folder (``--keep-best`` decides later which stay)."""


@dataclass(frozen=True)
class TrialOutcome:
    """What a trial gave: its numbers, or why it has none."""

    number: int
    values: tuple[float, ...] | None
    error: str | None
    seconds: float
    folder: str | None = None
    """The merged folder when it was kept."""


def evaluate(job: TrialJob) -> TrialOutcome:
    """Merge, score and clean up; every failure of the trial itself comes back as its ``error``."""
    from tui_merge.config.loading import parse_config
    from tui_merge.engine.job import MergeJob, run_job
    from tui_merge.errors import TuiMergeError

    started = time.monotonic()
    scratch = Path(job.scratch) if job.scratch else Path(tempfile.mkdtemp(prefix="tui-merge-trial-")) / "merged"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    recipe = scratch.with_suffix(".yaml")
    if not recipe.is_file():  # here the search saved it already; a Ray worker's node has it nowhere yet
        recipe.write_text(job.text, encoding="utf-8")
    kept = False
    try:
        loaded = parse_config(job.text, str(recipe))
        run_job(MergeJob(loaded, scratch, replace=True))
        values = tuple(measure(objective, scratch, recipe, job.device) for objective in job.objectives)
        kept = job.keep
        return TrialOutcome(job.number, values, None, time.monotonic() - started, str(scratch) if kept else None)
    except TrialFailed as failure:
        return TrialOutcome(job.number, None, failure.message, time.monotonic() - started)
    except TuiMergeError as error:
        return TrialOutcome(job.number, None, f"the merge failed: {error.message}", time.monotonic() - started)
    except Exception as error:  # noqa: BLE001 - one trial's failure must not end the search
        return TrialOutcome(job.number, None, f"{type(error).__name__}: {error}", time.monotonic() - started)
    finally:
        if not kept:
            shutil.rmtree(scratch, ignore_errors=True)
        if job.scratch is None and not kept:
            shutil.rmtree(scratch.parent, ignore_errors=True)
