"""Outputs whose replacement would destroy what is not a merge, unwritable parents, and two runs on one output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import folder_digest

from tui_merge.cli import main
from tui_merge.engine.lock import OutputLock, lock_path
from tui_merge.errors import BadInputError


def linear(folder: Path, a: Path, b: Path) -> Path:
    path = folder / "m.yaml"
    path.write_text(f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")
    return path


def refused(capsys: pytest.CaptureFixture[str], command: list[str]) -> str:
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith("tui-merge: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_force_never_replaces_a_folder_of_someone_s_own_files(capsys, tmp_path, llama_base, llama_finetune) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ("todo.txt", "paper.tex", "data.csv", "figure.png"):
        (notes / name).write_text(name)
    before = folder_digest(notes)

    err = refused(capsys, ["run", str(linear(tmp_path, llama_base, llama_finetune)), str(notes), "--force"])

    assert f"Output {notes} holds files that no tui-merge run wrote (data.csv, figure.png, paper.tex and 1 more)" in err
    assert folder_digest(notes) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.yaml", "notes"]


def test_force_replaces_an_earlier_merge_and_an_empty_folder(tmp_path, llama_base, llama_finetune) -> None:
    recipe = linear(tmp_path, llama_base, llama_finetune)
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    (tmp_path / "out" / "stale.txt").write_text("from the earlier merge's folder")
    assert main(["run", str(recipe), str(tmp_path / "out"), "--force"]) == 0
    assert not (tmp_path / "out" / "stale.txt").exists()
    (tmp_path / "empty").mkdir()
    assert main(["run", str(recipe), str(tmp_path / "empty")]) == 0  # an empty folder needs no --force
    assert (tmp_path / "empty" / "model.safetensors").is_file()


def test_a_home_folder_is_never_an_output(capsys, tmp_path, monkeypatch, llama_base, llama_finetune) -> None:
    home = tmp_path / "home" / "someone"
    home.mkdir(parents=True)
    (home / "thesis.txt").write_text("four years of work")
    monkeypatch.setenv("HOME", str(home))
    recipe = str(linear(tmp_path, llama_base, llama_finetune))

    for output in (home, home.parent):
        err = refused(capsys, ["run", recipe, str(output), "--force"])
        assert f"Output {output} is " in err and "home folder" in err
    assert (home / "thesis.txt").read_text() == "four years of work"
    assert not list(tmp_path.glob("home/.*lock")) and not list(tmp_path.glob(".*lock"))


def test_the_root_the_current_folder_and_its_parents_are_never_outputs(
    capsys, tmp_path, monkeypatch, llama_base, llama_finetune
) -> None:
    recipe = str(linear(tmp_path, llama_base, llama_finetune))
    empty = tmp_path / "empty" / "here"
    empty.mkdir(parents=True)
    monkeypatch.chdir(empty)

    assert "Output / is the root of the filesystem" in refused(capsys, ["run", recipe, "-o", "/"])
    for extra in ([], ["--force"]):
        assert "Output . is the current folder" in refused(capsys, ["run", recipe, "-o", ".", *extra])
    assert "Output .. is a folder that holds the current folder" in refused(capsys, ["run", recipe, "..", "--force"])
    assert list(empty.iterdir()) == [] and sorted(path.name for path in empty.parent.iterdir()) == ["here"]


def test_an_unwritable_output_parent_is_said_before_merging(capsys, tmp_path, llama_base, llama_finetune) -> None:
    from tui_merge.engine import lock

    locked = tmp_path / "theirs"
    locked.mkdir()
    real_open = os.open

    def refusing_open(path, flags, *args):
        if str(path).endswith(".tui-merge.lock"):  # what the lock opens first: a probe of the real permission
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    recipe = str(linear(tmp_path, llama_base, llama_finetune))
    lock.os.open = refusing_open
    try:
        err = refused(capsys, ["run", recipe, str(locked / "deep" / "out")])
    finally:
        lock.os.open = real_open
    assert f"Cannot write in {locked / 'deep'} (Permission denied); choose an output folder" in err
    assert list(locked.iterdir()) == []  # the folder the lock made on its way is gone again


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs setpriv and root")
def test_a_parent_owned_by_someone_else_without_the_override_capability(tmp_path, llama_base, llama_finetune) -> None:
    """As root without CAP_DAC_OVERRIDE (a hardened server), a 0700 folder of another user cannot be written."""
    locked = tmp_path / "theirs"
    locked.mkdir(mode=0o700)
    os.chown(locked, 65534, 65534)
    drop = "-dac_override,-dac_read_search,-fowner"
    command = [
        "setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--",
        sys.executable, "-m", "tui_merge", "run", str(linear(tmp_path, llama_base, llama_finetune)),
        str(locked / "out"),
    ]  # fmt: skip
    probe = subprocess.run(["setpriv", f"--bounding-set={drop}", "--", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this sandbox cannot drop capabilities")

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2, result.stderr
    assert f"Cannot write in {locked} (Permission denied)" in result.stderr and "Traceback" not in result.stderr
    assert list(locked.iterdir()) == []


def test_the_lock_lets_exactly_one_holder_in_however_starts_and_ends_interleave(tmp_path) -> None:
    """Threads take and drop one output's lock as fast as they can; never two hold it at once, and the file that
    a release removes never lets a late opener lock a name that a newer holder has taken over."""
    output = tmp_path / "out"
    inside, most, taken = [0], [0], [0]
    guard = threading.Lock()

    def contend() -> None:
        for _ in range(300):
            lock = OutputLock(output)
            try:
                lock.acquire()
            except BadInputError:
                continue
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                taken[0] += 1
            with guard:
                inside[0] -= 1
            lock.release()

    threads = [threading.Thread(target=contend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert most[0] == 1 and taken[0] > 0
    assert not lock_path(output).exists()


def test_a_late_opener_of_a_released_lock_file_does_not_share_the_lock_with_its_next_holder(
    tmp_path, monkeypatch
) -> None:
    """B opens the lock file; before B locks it, A lets go (removing the file) and C takes a new one. B's lock on
    the removed file must not count: B is refused, naming C."""
    from tui_merge.engine import lock as lock_module

    output = tmp_path / "out"
    first, third = OutputLock(output), OutputLock(output)
    first.acquire()
    real_flock = lock_module.fcntl.flock
    interleaved = []

    def flock_after_a_release(descriptor, operation):
        if not interleaved:
            interleaved.append(True)
            first.release()
            third.acquire()
        return real_flock(descriptor, operation)

    monkeypatch.setattr(lock_module.fcntl, "flock", flock_after_a_release)
    with pytest.raises(BadInputError, match=rf"Another tui-merge run \(pid {os.getpid()}\) is writing"):
        OutputLock(output).acquire()
    assert third.held
    third.release()


def test_two_runs_started_together_one_merges_the_other_is_refused(tmp_path, llama_base, llama_finetune) -> None:
    recipe = linear(tmp_path, llama_base, llama_finetune)
    assert main(["run", str(recipe), str(tmp_path / "reference")]) == 0
    reference = folder_digest(tmp_path / "reference")
    command = [sys.executable, "-m", "tui_merge", "run", str(recipe), str(tmp_path / "out")]
    for _ in range(3):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        starts = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
        results = [(process.wait(timeout=300), process.communicate()[1]) for process in starts]

        statuses = sorted(status for status, _ in results)
        assert statuses == [0, 2], results
        refusal = next(err for status, err in results if status == 2)
        pid = next(process.pid for process, (status, _) in zip(starts, results) if status == 0)
        assert (
            f"Another tui-merge run (pid {pid}) is writing {tmp_path / 'out'}" in refusal
            or "already exists and is not empty" in refusal  # the first had already finished
        ), refusal
        assert "Traceback" not in refusal
        assert folder_digest(tmp_path / "out") == reference
        assert not (tmp_path / "out.partial").exists() and not lock_path(tmp_path / "out").exists()
