"""Tensor tables from every checkpoint layout, compared with what the reference libraries load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from model_factory import ModelFactory
from tui_merge.models.checkpoint import read_checkpoint
from tui_merge.models.info import load_model_info
from tui_merge.models.tensor_data import read_tensor

TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def reference_state(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_single_file_offsets_point_at_each_tensors_bytes(llama_base: Path) -> None:
    checkpoint = read_checkpoint(llama_base)
    reference = reference_state(llama_base)
    raw = (llama_base / "model.safetensors").read_bytes()

    assert checkpoint.format == "safetensors"
    assert set(checkpoint.tensors) == set(reference)
    for name, entry in checkpoint.tensors.items():
        expected = reference[name]
        assert entry.shape == tuple(expected.shape)
        assert TORCH_DTYPES[entry.dtype] == expected.dtype
        assert entry.nbytes == expected.numel() * expected.element_size()
        stored = torch.frombuffer(bytearray(raw[entry.begin : entry.end]), dtype=expected.dtype)
        assert torch.equal(stored.reshape(expected.shape), expected), name


def test_sharded_safetensors_table_matches_the_single_file(factory: ModelFactory, llama_base: Path) -> None:
    sharded = factory.sharded("llama-sharded", llama_base)
    checkpoint = read_checkpoint(sharded)
    reference = reference_state(llama_base)

    assert len(checkpoint.files) > 2
    assert {name: entry.shape for name, entry in checkpoint.tensors.items()} == {
        name: tuple(tensor.shape) for name, tensor in reference.items()
    }
    for name, entry in checkpoint.tensors.items():
        with safe_open(entry.file, "pt") as handle:
            assert name in handle.keys()  # noqa: SIM118 (a safe_open handle is not a dict)
        assert torch.equal(read_tensor(entry), reference[name])


@pytest.mark.parametrize("shards", [1, 3])
def test_bin_checkpoints_are_read_from_the_pickle_without_loading_data(
    factory: ModelFactory, llama_base: Path, shards: int
) -> None:
    folder = factory.as_bin(f"llama-bin-{shards}", llama_base, shards=shards)
    checkpoint = read_checkpoint(folder)
    reference = reference_state(llama_base)

    assert checkpoint.format == "bin"
    assert len(checkpoint.files) == shards
    assert {name: (entry.shape, entry.dtype) for name, entry in checkpoint.tensors.items()} == {
        name: (tuple(tensor.shape), "F32") for name, tensor in reference.items()
    }
    name = "model.layers.1.self_attn.v_proj.weight"
    assert torch.equal(read_tensor(checkpoint.tensors[name]), reference[name])


def test_safetensors_is_preferred_when_a_folder_has_both(factory: ModelFactory, llama_base: Path) -> None:
    folder = factory.damaged("both-formats", llama_base)
    torch.save(reference_state(llama_base), folder / "pytorch_model.bin")

    assert read_checkpoint(folder).format == "safetensors"


def test_model_info_summarises_the_model(llama_base: Path) -> None:
    info = load_model_info(str(llama_base))
    reference = reference_state(llama_base)

    assert info.parameter_count == sum(tensor.numel() for tensor in reference.values())
    assert info.total_bytes == sum(tensor.numel() * tensor.element_size() for tensor in reference.values())
    assert info.weight_dtype == "float32"
    assert info.summary()["layers"] == 2
    assert info.summary()["kv_heads"] == 2
