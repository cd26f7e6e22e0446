"""The stand-in Hub that the Hub tests run against: huggingface_hub itself fetches from it, offline."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_huggingface_hub_reads_a_safetensors_header_with_range_requests(hub, llama_base) -> None:
    from huggingface_hub import HfApi

    commit = hub.add("org/base", llama_base)
    metadata = HfApi().get_safetensors_metadata("org/base")

    size = (llama_base / "model.safetensors").stat().st_size
    assert "model.embed_tokens.weight" in metadata.weight_map
    assert 0 < hub.sent["model.safetensors"] < size  # the header only, never the weights
    assert len(commit) == 40


def test_files_download_into_the_cache_with_the_commit_and_errors_carry_the_hub_s_codes(
    hub, llama_base, tmp_path
) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    commit = hub.add("org/base", llama_base)
    hub.add("org/gated", llama_base, gated=True)
    path = hf_hub_download("org/base", "config.json")

    assert path.startswith(str(tmp_path / "hf-cache")) and commit in path
    assert Path(path).read_text() == (llama_base / "config.json").read_text()
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "config.json")
