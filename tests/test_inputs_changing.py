"""Input files that change under a running merge: a sentence and a resumable partial folder, never a SIGBUS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from conftest import folder_digest
from safetensors.torch import load_file

from tui_merge.cli import main
from tui_merge.models.checkpoint import read_checkpoint
from tui_merge.models.reader import InputChanged, TensorReader


@pytest.fixture(scope="module")
def bin_finetune(factory, llama_finetune) -> Path:
    return factory.as_bin("llama-finetune-bin-2", llama_finetune, shards=2)


def test_bin_tensors_are_read_by_their_byte_ranges_with_their_values(bin_finetune, llama_finetune) -> None:
    checkpoint = read_checkpoint(bin_finetune)
    expected = load_file(llama_finetune / "model.safetensors")

    assert all(entry.begin is not None for entry in checkpoint.tensors.values())
    with TensorReader() as reader:
        for name, entry in checkpoint.tensors.items():
            assert torch.equal(reader.read(entry), expected[name]), name


def test_a_tensor_stored_as_a_view_is_read_through_the_map_and_a_shrunk_file_is_a_sentence(tmp_path) -> None:
    square = torch.arange(64, dtype=torch.float32).reshape(8, 8)
    path = tmp_path / "pytorch_model.bin"
    torch.save({"transposed": square.t(), "plain": torch.ones(3)}, path)
    tensors = read_checkpoint(tmp_path).tensors
    assert tensors["transposed"].begin is None and tensors["plain"].begin is not None

    with TensorReader() as reader:
        assert torch.equal(reader.read(tensors["transposed"]), square.t())
        path.write_bytes(path.read_bytes()[:200])
        with pytest.raises(InputChanged, match="shrank while reading tensor 'transposed'"):
            reader.read(tensors["transposed"])
        with pytest.raises(InputChanged, match="ended while reading tensor 'plain'"):
            reader.read(tensors["plain"])


def test_a_bin_input_cut_short_during_the_merge_stops_with_a_sentence_and_resumes_once_restored(
    tmp_path, monkeypatch, capsys, llama_base, bin_finetune
) -> None:
    config = tmp_path / "merge.yaml"
    config.write_text(
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {bin_finetune}}}]\n"
        "tui_merge: {shard_size: 30KB}\n"
    )
    assert main(["run", str(config), str(tmp_path / "reference")]) == 0
    victim = bin_finetune / "pytorch_model-00002-of-00002.bin"
    original, status = victim.read_bytes(), victim.stat()
    reads = {"count": 0}
    read = TensorReader.read

    def read_then_cut(self, entry):
        reads["count"] += 1
        if reads["count"] == 20:
            victim.write_bytes(original[: len(original) // 2])  # a download started over the model
        return read(self, entry)

    monkeypatch.setattr(TensorReader, "read", read_then_cut)
    try:
        assert main(["run", str(config), str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"tui-merge: error: {victim} ended while reading tensor ")
        assert "the file was truncated or rewritten during the merge (restore it before resuming)" in err
        assert "shards are finished and kept in" in err and err.endswith("--resume")
        assert not (tmp_path / "out").exists() and (tmp_path / "out.partial").is_dir()
    finally:
        victim.write_bytes(original)
        os.utime(victim, ns=(status.st_atime_ns, status.st_mtime_ns))
    monkeypatch.setattr(TensorReader, "read", read)

    assert main(["run", str(config), str(tmp_path / "out"), "--resume"]) == 0
    assert folder_digest(tmp_path / "out") == folder_digest(tmp_path / "reference")
