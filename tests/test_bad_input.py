"""Bad input: one sentence naming the file, exit 2, no traceback, nothing executed or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import folder_digest

from model_factory import ModelFactory, truncate, write_header_length
from tui_merge.cli import main


def inspect_fails(capsys: pytest.CaptureFixture[str], *folders: Path) -> str:
    """Run ``tui-merge inspect`` in-process; assert the bad-input contract and return the message."""
    before = {folder: folder_digest(folder) for folder in folders if folder.is_dir()}

    status = main(["inspect", *map(str, folders)])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.startswith("tui-merge: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert {folder: folder_digest(folder) for folder in before} == before
    return err


@pytest.fixture()
def damaged(factory: ModelFactory, llama_finetune: Path, request: pytest.FixtureRequest) -> Path:
    return factory.damaged(request.node.name.replace("[", "-").replace("]", ""), llama_finetune)


def test_missing_folder(capsys, tmp_path: Path) -> None:
    assert f"Model folder {tmp_path / 'nope'} does not exist" in inspect_fails(capsys, tmp_path / "nope")


def test_folder_without_weights(capsys, damaged: Path) -> None:
    (damaged / "model.safetensors").unlink()

    assert f"{damaged} holds no model weights" in inspect_fails(capsys, damaged)


def test_missing_config(capsys, damaged: Path) -> None:
    (damaged / "config.json").unlink()

    assert f"{damaged} has no config.json" in inspect_fails(capsys, damaged)


def test_garbage_config(capsys, damaged: Path) -> None:
    (damaged / "config.json").write_bytes(b"\x00\xffnot json at all")

    assert f"{damaged / 'config.json'} is not valid JSON" in inspect_fails(capsys, damaged)


def test_empty_weights_file(capsys, damaged: Path) -> None:
    (damaged / "model.safetensors").write_bytes(b"")

    assert "model.safetensors is 0 bytes, too short to be a safetensors file" in inspect_fails(capsys, damaged)


def test_truncated_weights(capsys, damaged: Path) -> None:
    weights = damaged / "model.safetensors"
    truncate(weights, weights.stat().st_size - 100)

    message = inspect_fails(capsys, damaged)
    assert f"{weights} is truncated: tensor" in message
    assert "download or copy it again" in message


def test_header_length_beyond_the_file(capsys, damaged: Path) -> None:
    weights = damaged / "model.safetensors"
    write_header_length(weights, 10**12)

    assert f"{weights} declares a 1000000000000-byte header" in inspect_fails(capsys, damaged)


def test_header_that_is_not_json(capsys, damaged: Path) -> None:
    weights = damaged / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:12] = b"\xff\xfe{]"
    weights.write_bytes(bytes(data))

    assert f"The header of {weights} is not valid JSON" in inspect_fails(capsys, damaged)


def test_index_naming_a_missing_shard(capsys, factory: ModelFactory, llama_finetune: Path) -> None:
    folder = factory.damaged("missing-shard", factory.sharded("llama-finetune-sharded", llama_finetune))
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    missing = sorted(set(index["weight_map"].values()))[1]
    (folder / missing).unlink()

    assert f"names shard {missing}, which is missing from {folder}" in inspect_fails(capsys, folder)


def test_index_disagreeing_with_its_shards(capsys, factory: ModelFactory, llama_finetune: Path) -> None:
    folder = factory.damaged("stale-index", factory.sharded("llama-finetune-sharded", llama_finetune))
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    name, shard = next(iter(index["weight_map"].items()))
    other = next(file for file in sorted(set(index["weight_map"].values())) if file != shard)
    index["weight_map"][name] = other
    index_path.write_text(json.dumps(index))

    assert f"says tensor {name!r} is in {other}, but that shard does not contain it" in inspect_fails(capsys, folder)


def test_damaged_bin(capsys, factory: ModelFactory, llama_finetune: Path) -> None:
    folder = factory.damaged("damaged-bin", factory.as_bin("llama-finetune-bin", llama_finetune))
    weights = folder / "pytorch_model.bin"
    truncate(weights, weights.stat().st_size // 2)

    assert f"{weights} is not a readable PyTorch checkpoint" in inspect_fails(capsys, folder)


class CodePayload:
    """Unpickling this runs ``touch`` on the marker: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_bin_with_a_code_payload_is_refused_and_never_runs(
    capsys, factory: ModelFactory, llama_finetune: Path, tmp_path: Path
) -> None:
    folder = factory.damaged("malicious-bin", factory.as_bin("llama-finetune-bin", llama_finetune))
    marker = tmp_path / "payload-ran"
    weights = folder / "pytorch_model.bin"
    torch.save({"model.embed_tokens.weight": CodePayload(marker)}, weights)

    message = inspect_fails(capsys, folder)

    assert f"{weights} contains Python objects other than tensors" in message
    assert not marker.exists()
    # The payload is live: an unrestricted load would have run it.
    torch.load(weights, weights_only=False)
    assert marker.exists()


def test_unknown_base_is_bad_input(capsys, llama_base: Path, tmp_path: Path) -> None:
    status = main(["inspect", str(llama_base), "--base", str(tmp_path / "elsewhere")])

    assert status == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui_merge", "inspect", str(tmp_path / "missing")], capture_output=True, text=True
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"tui-merge: error: Model folder {tmp_path / 'missing'} does not exist.\n"


def _transcript(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """What a shell shows: stdout and stderr interleaved as they were written."""
    command = [sys.executable, "-m", "tui_merge", *args]
    env = {**os.environ, "TERM": "dumb", "NO_COLOR": "1"}
    return subprocess.run(command, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_an_error_after_an_unanswered_prompt_starts_its_own_line(llama_base: Path, tmp_path: Path) -> None:
    result = _transcript("plain", str(llama_base), stdin="")  # input ends at the first question

    assert result.returncode == 2
    assert result.stdout.endswith(
        "\ntui-merge: error: Input ended before the plain wizard finished; nothing was written.\n"
    )


def test_printed_configs_end_their_last_line(llama_base: Path, tmp_path: Path) -> None:
    config = tmp_path / "merge.yaml"
    config.write_text(f"tui_merge: {{seed: 1}}\nmerge_method: linear\nmodels:\n  - model: {llama_base}")  # no line end

    result = _transcript("export", "--mergekit", str(config))

    assert result.returncode == 0 and result.stdout == f"merge_method: linear\nmodels:\n  - model: {llama_base}\n"
