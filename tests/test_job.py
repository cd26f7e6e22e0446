"""One merge job below every front end: its steps, its events, and nobody else calling the executor."""

from __future__ import annotations

import ast
import errno
import os
from pathlib import Path

import pytest
from conftest import folder_digest

import tui_merge
from tui_merge.config import parse_config
from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import (
    CheckDone,
    Log,
    MergeFailed,
    MergeFinished,
    MergeStarted,
    TensorMerged,
    VerificationStarted,
    Verified,
)
from tui_merge.engine.job import MergeJob, run_job
from tui_merge.engine.journal import JOURNAL_NAME
from tui_merge.engine.merge_errors import MergeCancelled, MergeError, MergeWriteFailed
from tui_merge.errors import BadInputError, TuiMergeError

PACKAGE = Path(tui_merge.__file__).parent


def linear_config(base: Path, other: Path) -> str:
    return f"merge_method: linear\nmodels:\n  - model: {base}\n  - model: {other}\n"


def test_a_job_saves_plans_merges_and_verifies_reporting_each_step_in_order(
    tmp_path, llama_base, llama_finetune
) -> None:
    events = []
    saved = tmp_path / "merge.yaml"
    loaded = parse_config(linear_config(llama_base, llama_finetune), str(saved))

    result = run_job(MergeJob(loaded, tmp_path / "out", save_config=saved, verify=True), on_event=events.append)

    assert saved.read_text() == loaded.text
    kinds = [type(event) for event in events if not isinstance(event, (TensorMerged, CheckDone))]
    assert kinds[:2] == [Log, MergeStarted] and kinds[-3:] == [MergeFinished, VerificationStarted, Verified]
    assert events[0].text == "no model gives a weight: 2 models merged with equal weights"
    checks = [event.check for event in events if isinstance(event, CheckDone)]
    assert checks == result.report.checks and result.report.ok
    assert result.summary.tensors == sum(isinstance(event, TensorMerged) for event in events)


def test_a_job_refuses_an_unsafe_output_before_it_writes_anything(tmp_path, llama_base, llama_finetune) -> None:
    loaded = parse_config(linear_config(llama_base, llama_finetune), "merge.yaml")
    before = folder_digest(llama_base)

    with pytest.raises(BadInputError, match="inside input model"):
        run_job(MergeJob(loaded, llama_base / "merged"))

    assert folder_digest(llama_base) == before and not (llama_base / "merged.partial").exists()


def test_a_cancelled_job_leaves_nothing_at_the_output(tmp_path, llama_base, llama_finetune) -> None:
    loaded = parse_config(linear_config(llama_base, llama_finetune), "merge.yaml")
    control = MergeControl()
    events = []

    def cancel_after_the_first_tensor(event) -> None:
        events.append(event)
        if isinstance(event, TensorMerged):
            control.stop()

    with pytest.raises(MergeCancelled):
        run_job(MergeJob(loaded, tmp_path / "out"), on_event=cancel_after_the_first_tensor, control=control)

    assert isinstance(events[-1], MergeFailed)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def _modules_calling(name: str) -> set[str]:
    """Modules of the package whose code calls a function or method called ``name``."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if called == name:
                    found.add(path.relative_to(PACKAGE).as_posix())
    return found


def test_only_the_job_runs_the_executor_and_checks_the_output() -> None:
    assert _modules_calling("execute") == {"engine/job.py"}
    assert _modules_calling("check_output") == {"engine/job.py"}
    # The front ends that merge: the command lines (through headless), the wizard's Run step, the sweep.
    assert _modules_calling("run_job") == {"headless.py", "tui/screens/run.py", "search/sweep.py", "search/trial.py"}


def test_no_front_end_imports_another() -> None:
    for front, other in (("plain", "tui_merge.cli"), ("plain", "tui_merge.tui"), ("tui", "tui_merge.cli")):
        for path in (PACKAGE / front).rglob("*.py"):
            assert other not in path.read_text(encoding="utf-8"), f"{path.name} imports {other}"


@pytest.mark.parametrize("keep_partial", [True, False])
def test_a_full_disk_keeps_the_partial_folder_for_a_resume_only_when_asked(
    tmp_path, monkeypatch, llama_base, llama_finetune, keep_partial
) -> None:
    from tui_merge.engine import writer

    real_write = writer.OutputWriter.write_tensor
    calls = []

    def write_until_the_disk_is_full(self, task, tensor) -> None:
        calls.append(task.name)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, task, tensor)

    monkeypatch.setattr(writer.OutputWriter, "write_tensor", write_until_the_disk_is_full)
    loaded = parse_config(linear_config(llama_base, llama_finetune) + "tui_merge: {shard_size: 30KB}\n", "m.yaml")

    with pytest.raises(TuiMergeError) as stopped:
        run_job(MergeJob(loaded, tmp_path / "out", keep_partial=keep_partial))

    assert not (tmp_path / "out").exists()
    if keep_partial:
        assert isinstance(stopped.value, MergeWriteFailed) and stopped.value.exit_code == 1
        assert stopped.value.message.startswith(f"The disk of {tmp_path} is full (No space left on device): ")
        assert "nothing is at" in stopped.value.message
        assert "--resume" in stopped.value.message and (tmp_path / "out.partial" / JOURNAL_NAME).is_file()
    else:
        assert isinstance(stopped.value, MergeError) and stopped.value.exit_code == 1
        assert "No space left on device" in stopped.value.message and not (tmp_path / "out.partial").exists()
