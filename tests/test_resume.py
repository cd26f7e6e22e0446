"""Crashes, signals and --resume on real subprocesses: nothing at OUT until complete, and resume is byte-exact.

The merge runs as ``tui-merge run`` in a subprocess; with a fault it runs under
``crash_at.py``, which makes it send itself a real signal once a number of
output bytes is written.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import folder_digest

from tui_merge.engine.prepare import prepare

pytestmark = pytest.mark.slow
"""Real subprocesses killed and resumed: run them with ``-m slow``, leave them out with ``-m "not slow"``."""

CONFIG = """\
merge_method: dare_ties
base_model: {base}
models:
  - model: {chat}
    parameters: {{weight: 0.7, density: 0.5}}
tui_merge: {{shard_size: 30KB, seed: 3}}
"""


@pytest.fixture(scope="module")
def merge_setup(tmp_path_factory, llama_base, llama_finetune):
    """The config, an uninterrupted run of it, and the inputs' digests."""
    folder = tmp_path_factory.mktemp("resume")
    config = folder / "merge.yaml"
    config.write_text(CONFIG.format(base=llama_base, chat=llama_finetune))
    reference = folder / "reference"
    result = tui_merge("run", str(config), str(reference))
    assert result.returncode == 0, result.stderr
    assert shard_count(reference) > 3
    return config, reference, (folder_digest(llama_base), folder_digest(llama_finetune)), (llama_base, llama_finetune)


CRASH_AT = Path(__file__).parent / "crash_at.py"


def tui_merge(*args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CRASH_AT), fault, *args] if fault else [sys.executable, "-m", "tui_merge", *args]
    return subprocess.run(command, capture_output=True, text=True)


def shard_count(folder: Path) -> int:
    return len(list(folder.glob("model-*.safetensors")))


def test_a_stop_before_the_first_shard_says_one_thing_and_the_resume_starts_over(tmp_path, llama_base, llama_finetune):
    config = tmp_path / "merge.yaml"
    config.write_text(CONFIG.format(base=llama_base, chat=llama_finetune).replace("30KB", "5GB"))
    out = tmp_path / "out"

    stopped = tui_merge("run", str(config), str(out), fault="SIGINT@1")

    assert stopped.returncode == 130 and not out.exists()
    resume = f"tui-merge run {config} -o {out} --resume"
    assert f"no shard was finished, so {resume} starts over in {out}.partial" in stopped.stderr
    assert "continue with" not in stopped.stderr and "Traceback" not in stopped.stderr
    assert tui_merge("run", str(config), str(out), "--resume").returncode == 0
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize("at_bytes", [1, 60_000, 10**12])
def test_sigkill_leaves_nothing_at_out_and_resume_is_byte_identical(tmp_path, merge_setup, at_bytes) -> None:
    config, reference, digests, inputs = merge_setup
    out = tmp_path / "out"
    last_tensor = prepare(config).bytes_to_write  # the last tensor is written, its shard not yet closed
    killed = tui_merge("run", str(config), str(out), fault=f"SIGKILL@{min(at_bytes, last_tensor)}")

    assert killed.returncode == -signal.SIGKILL
    assert not out.exists() and (tmp_path / "out.partial").is_dir()

    again = tui_merge("run", str(config), str(out))
    assert again.returncode == 2
    assert f"continue it with tui-merge run {config} -o {out} --resume" in again.stderr

    resumed = tui_merge("run", str(config), "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert folder_digest(out) == folder_digest(reference)
    assert not (tmp_path / "out.partial").exists()
    assert (folder_digest(inputs[0]), folder_digest(inputs[1])) == digests


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signals_end_between_tensors_and_say_how_to_resume(tmp_path, merge_setup, name) -> None:
    config, reference, _, _ = merge_setup
    out = tmp_path / "out"
    stopped = tui_merge("run", str(config), str(out), fault=f"{name}@60000")

    assert stopped.returncode == 130
    assert f"{name}: stopping after the current tensor" in stopped.stderr
    assert f"continue with tui-merge run {config} -o {out} --resume" in stopped.stderr
    assert f"of {shard_count(reference)} shards are finished and kept in {out}.partial" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert not out.exists()
    assert 0 < shard_count(tmp_path / "out.partial") < shard_count(reference)

    resumed = tui_merge("run", str(config), str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming:" in resumed.stderr
    assert folder_digest(out) == folder_digest(reference)


def test_resume_refuses_another_config_and_changed_shards(tmp_path, merge_setup) -> None:
    config, _, _, _ = merge_setup
    out = tmp_path / "out"
    assert tui_merge("run", str(config), str(out), fault="SIGKILL@60000").returncode == -signal.SIGKILL

    changed = tmp_path / "changed.yaml"
    changed.write_text(config.read_text().replace("seed: 3", "seed: 4"))
    other = tui_merge("run", str(changed), str(out), "--resume")
    assert other.returncode == 2 and "was left by a merge of another config" in other.stderr
    assert (tmp_path / "out.partial").is_dir()  # a refused resume touches nothing

    first = sorted((tmp_path / "out.partial").glob("model-*.safetensors"))[0]
    first.write_bytes(first.read_bytes()[:-1] + b"\0")
    damaged = tui_merge("run", str(config), str(out), "--resume")
    assert damaged.returncode == 2 and "no longer matches the journal" in damaged.stderr
    assert not out.exists()


def test_resume_without_a_partial_folder_says_so(tmp_path, merge_setup) -> None:
    config, _, _, _ = merge_setup
    result = tui_merge("run", str(config), str(tmp_path / "fresh"), "--resume")

    assert result.returncode == 2
    assert f"There is no interrupted merge to resume at {tmp_path / 'fresh.partial'}" in result.stderr


def test_a_config_written_differently_that_plans_the_same_merge_resumes_it(tmp_path, merge_setup) -> None:
    """The wizard reopens a recipe and saves it with every layer's value written out: the same plan, so the
    interrupted merge of the original resumes under it, to the same bytes."""
    config, reference, _, (base, chat) = merge_setup
    out = tmp_path / "out"
    assert tui_merge("run", str(config), str(out), fault="SIGKILL@60000").returncode == -signal.SIGKILL

    rewritten = tmp_path / "rewritten.yaml"
    rewritten.write_text(
        "# the same merge, spelled otherwise\n"
        f"merge_method: dare_ties\nbase_model: {base}\nmodels:\n"
        f"  - model: {chat}\n    parameters:\n      density: 0.5\n      weight: [0.7, 0.7]\n"
        "tui_merge:\n  seed: 3\n  shard_size: 30KB\n"
    )
    resumed = tui_merge("run", str(rewritten), str(out), "--resume")

    assert resumed.returncode == 0, resumed.stderr
    assert "resuming:" in resumed.stderr
    shards = {name: digest for name, digest in folder_digest(out).items() if name.endswith(".safetensors")}
    assert shards == {
        name: digest for name, digest in folder_digest(reference).items() if name.endswith(".safetensors")
    }
