"""``run --download``: only the weight files a merge reads come from the Hub (a stand-in on 127.0.0.1), checked."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from hub_server import Fault

from tui_merge.cli import main
from tui_merge.config.loading import load_config
from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import DownloadProgress
from tui_merge.engine.job import MergeJob, run_job
from tui_merge.errors import TuiMergeError

SLERP = """\
merge_method: slerp
base_model: {base}
models:
  - model: {base}
  - model: {other}
parameters:
  t: 0.5
dtype: float32
"""

FIRST_LAYER = """\
merge_method: passthrough
slices:
  - sources:
      - model: {model}
        layer_range: [0, 1]
dtype: float32
"""


@pytest.fixture(scope="module")
def llama_sharded(factory) -> Path:
    """The fine-tune saved in small shards."""
    return factory.sharded("llama-finetune-shards", factory.llama("llama-finetune", finetune_seed=1))


def with_other_copies(source: Path, target: Path) -> Path:
    """``source`` plus a .bin copy, an onnx export, a gguf and an ``original/`` folder, as many repos hold."""
    shutil.copytree(source, target)
    (target / "pytorch_model.bin").write_bytes(b"\0" * 4096)
    (target / "model.onnx").write_bytes(b"\0" * 4096)
    (target / "model.Q4_K_M.gguf").write_bytes(b"\0" * 4096)
    (target / "original").mkdir()
    (target / "original" / "consolidated.00.pth").write_bytes(b"\0" * 4096)
    return target


def write(tmp_path: Path, template: str, **names: str) -> Path:
    config = tmp_path / "merge.yaml"
    config.write_text(template.format(**names))
    return config


def two_repos(hub, base: Path, other: Path, tmp_path: Path) -> Path:
    """``base`` and ``other`` served as org/base and org/chat, and a slerp config of them."""
    hub.add("org/base", base)
    hub.add("org/chat", other)
    return write(tmp_path, SLERP, base="org/base", other="org/chat")


def cached_weights(tmp_path: Path) -> set[str]:
    return {path.name for path in (tmp_path / "hf-cache").rglob("*") if path.name.endswith(".safetensors")}


def test_a_merge_of_hub_models_is_refused_without_download_saying_what_it_would_fetch(
    hub, llama_base, llama_finetune, tmp_path, capsys
) -> None:
    config = two_repos(hub, llama_base, llama_finetune, tmp_path)

    assert main(["run", str(config), str(tmp_path / "out")]) == 2

    err = capsys.readouterr().err
    assert "on the Hub, not in the cache: 2 files" in err and "rerun with --download" in err
    assert not (tmp_path / "out").exists() and cached_weights(tmp_path) == set()
    assert main(["run", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "from the Hub   org/base@" in out and "1 of its files" in out and cached_weights(tmp_path) == set()


def test_download_fetches_only_what_the_merge_reads_and_the_merge_equals_the_local_one(
    hub, llama_base, llama_sharded, tmp_path, capsys
) -> None:
    hub.add("org/base", with_other_copies(llama_base, tmp_path / "repo-base"))
    hub.add("org/chat", with_other_copies(llama_sharded, tmp_path / "repo-chat"))
    config = write(tmp_path, SLERP, base="org/base", other="org/chat")
    (tmp_path / "local").mkdir()
    local = write(tmp_path / "local", SLERP, base=llama_base, other=llama_sharded)

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0
    assert main(["run", str(local), str(tmp_path / "local-out")]) == 0

    sent = set(hub.sent)
    assert not {"pytorch_model.bin", "model.onnx", "model.Q4_K_M.gguf", "original/consolidated.00.pth"} & sent
    assert cached_weights(tmp_path) == {"model.safetensors"} | {
        path.name for path in llama_sharded.glob("*.safetensors")
    }
    merged = (tmp_path / "out" / "model.safetensors").read_bytes()
    assert merged == (tmp_path / "local-out" / "model.safetensors").read_bytes()
    err = capsys.readouterr().err
    assert "sha256 checked" in err and "downloading 8 files" in err


def test_a_passthrough_of_the_first_layer_downloads_only_the_shards_holding_it(hub, llama_sharded, tmp_path) -> None:
    import json

    hub.add("org/chat", llama_sharded)
    config = write(tmp_path, FIRST_LAYER, model="org/chat")

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0

    weight_map = json.loads((llama_sharded / "model.safetensors.index.json").read_text())["weight_map"]
    needed = {shard for name, shard in weight_map.items() if not name.startswith("model.layers.1.")}
    assert cached_weights(tmp_path) == needed
    assert needed != set(weight_map.values())  # a shard holds only layer 1, and stayed on the Hub


def test_a_dropped_connection_is_resumed_and_a_busy_hub_waited_for(
    hub, llama_base, llama_finetune, tmp_path, monkeypatch
) -> None:
    from tui_merge.engine import download

    monkeypatch.setattr(download, "BACKOFF_SECONDS", (0,))
    config = two_repos(hub, llama_base, llama_finetune, tmp_path)
    hub.faults["model.safetensors"] = Fault(times=1, drop_after=50_000)

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0

    size = (llama_base / "model.safetensors").stat().st_size
    assert hub.faults["model.safetensors"].times == 0  # the connection did drop
    assert any("bytes=50000-" in request for request in hub.requests) or hub.sent["model.safetensors"] > 2 * size
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "hf-cache")
    hub.faults["model.safetensors"] = Fault(times=2, status=503, retry_after=0)
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0
    assert hub.faults["model.safetensors"].times == 0
    shutil.rmtree(tmp_path / "out")
    shutil.rmtree(tmp_path / "hf-cache")
    hub.faults["model.safetensors"] = Fault(times=2, status=429, retry_after=0)
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0
    assert hub.faults["model.safetensors"].times == 0
    for folder in (llama_base, llama_finetune):
        digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
        assert any((tmp_path / "hf-cache").rglob(digest))


def test_a_hub_that_stays_busy_is_one_sentence(hub, llama_base, llama_finetune, tmp_path, monkeypatch, capsys):
    from tui_merge.engine import download

    monkeypatch.setattr(download, "BACKOFF_SECONDS", (0,))
    config = two_repos(hub, llama_base, llama_finetune, tmp_path)
    hub.faults["model.safetensors"] = Fault(times=100, status=503, retry_after=0)

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 1

    err = capsys.readouterr().err
    assert "answered 503 for org/" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_file_that_arrives_damaged_is_refused_and_removed_from_the_cache(
    hub, llama_base, llama_finetune, tmp_path, capsys
) -> None:
    config = two_repos(hub, llama_base, llama_finetune, tmp_path)
    hub.corrupt.add("model.safetensors")  # the whole file only: header reads by range see true bytes

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 2

    err = capsys.readouterr().err
    assert "where the Hub lists" in err and "removed from the cache" in err
    assert not (tmp_path / "out").exists() and cached_weights(tmp_path) == set()
    hub.corrupt.clear()
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0


def test_a_stop_during_the_download_leaves_nothing_at_the_output_and_the_next_run_completes(
    hub, llama_base, llama_finetune, tmp_path
) -> None:
    config = two_repos(hub, llama_base, llama_finetune, tmp_path)
    control = MergeControl()

    def stop_on_progress(event) -> None:
        if isinstance(event, DownloadProgress):
            control.stop()

    with pytest.raises(TuiMergeError) as caught:
        run_job(MergeJob(load_config(config), tmp_path / "out", download=True), on_event=stop_on_progress,
                control=control)  # fmt: skip

    assert caught.value.exit_code == 130 and "run the same command again" in caught.value.message
    assert not (tmp_path / "out").exists()
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0


def test_the_disk_is_checked_before_the_first_byte(hub, llama_base, llama_finetune, tmp_path, monkeypatch, capsys):
    from tui_merge.engine import download

    config = two_repos(hub, llama_base, llama_finetune, tmp_path)
    monkeypatch.setattr(download, "free_bytes", lambda folder: 1000)

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 2

    assert "Not enough disk space to download and merge" in capsys.readouterr().err
    assert cached_weights(tmp_path) == set()


def test_the_recipe_pins_each_hub_id_to_its_commit_and_replays_after_the_branch_moves(
    hub, llama_base, llama_finetune, llama_unrelated, tmp_path
) -> None:
    first = hub.add("org/base", llama_base)
    chat = hub.add("org/chat", llama_finetune)
    config = write(tmp_path, SLERP, base="org/base", other="org/chat")
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0

    recipe = (tmp_path / "out" / "tui_merge_config.yaml").read_text()
    assert recipe == SLERP.format(base=f"org/base@{first}", other=f"org/chat@{chat}")
    hub.add("org/base", llama_unrelated)  # main moves on
    assert main(["run", str(tmp_path / "out" / "tui_merge_config.yaml"), str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "model.safetensors").read_bytes() == (
        tmp_path / "out" / "model.safetensors"
    ).read_bytes()


async def test_the_wizard_asks_before_downloading_escape_goes_back_and_d_downloads_then_merges(
    hub, workdir, llama_base, llama_finetune
) -> None:
    from test_wizard_tui import SIZE, state_with, status_text, wait_until
    from textual.widgets import RichLog

    from tui_merge.tui.app import WizardApp
    from tui_merge.tui.modals import ChoiceScreen

    commits = [hub.add("org/base", llama_base), hub.add("org/chat", llama_finetune)]
    state = state_with("org/base", "org/chat", method_name="slerp", output="merged")
    app = WizardApp(state, start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert "org/base, org/chat are on the Hub" in app.screen.question
        await pilot.press("escape")  # the default: nothing downloaded, back to the Review step
        await wait_until(pilot, lambda: not isinstance(app.screen, ChoiceScreen))
        assert cached_weights(workdir) == set() and not state.download
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("d")
        await wait_until(pilot, lambda: "verified" in status_text(app), seconds=60)
        log = "\n".join(str(line.text) for line in app.screen.query_one("#log", RichLog).lines)
        assert "downloaded org/chat/model.safetensors" in log and "sha256 checked" in log
    assert (workdir / "merged" / "model.safetensors").is_file()
    assert cached_weights(workdir) == {"model.safetensors"}
    saved = (workdir / "merge.yaml").read_text()
    assert f"model: org/base@{commits[0]}" in saved and f"model: org/chat@{commits[1]}" in saved
    assert main(["run", "merge.yaml", "again"]) == 0  # the pinned config replays from the cache
    assert (workdir / "again" / "model.safetensors").read_bytes() == (
        workdir / "merged" / "model.safetensors"
    ).read_bytes()


def test_huggingface_hub_s_own_bars_are_off_while_it_downloads_for_us_and_on_again_after(
    hub, llama_base, llama_finetune, tmp_path, monkeypatch
) -> None:
    import huggingface_hub
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()  # the test session's own setting, restored at the end
    enable_progress_bars()  # as a person's shell has them
    real = huggingface_hub.hf_hub_download
    seen = []

    def recording(*args, **kwargs):
        seen.append(are_progress_bars_disabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording)
    config = two_repos(hub, llama_base, llama_finetune, tmp_path)

    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0

    assert len(seen) > 2 and all(seen)  # metadata files and weights alike
    assert not are_progress_bars_disabled()
    if was_disabled:
        disable_progress_bars()


def test_a_gated_repo_opens_with_hf_token_which_is_never_printed_nor_written(
    hub, llama_base, llama_finetune, tmp_path, monkeypatch, capsys
) -> None:
    hub.add("org/base", llama_base, gated=True)
    hub.add("org/chat", llama_finetune, gated=True)
    config = write(tmp_path, SLERP, base="org/base", other="org/chat")
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 2
    assert "org/base is gated: accept its licence" in capsys.readouterr().err

    monkeypatch.setenv("HF_TOKEN", hub.token)
    assert main(["inspect", "org/base", "org/chat"]) == 0
    assert main(["run", str(config), str(tmp_path / "out"), "--download"]) == 0

    shown = capsys.readouterr()
    assert hub.token not in shown.out + shown.err
    written = [path for path in (tmp_path / "out").rglob("*") if path.is_file()] + [config]
    assert all(hub.token.encode() not in path.read_bytes() for path in written)
