"""Model arguments: folders, and hub ids found offline in a Hugging Face cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tui_merge.errors import BadInputError
from tui_merge.models.info import load_model_info
from tui_merge.models.resolve import resolve_model


def add_to_cache(cache: Path, repo_id: str, model: Path, commit: str, ref: str | None = "main") -> Path:
    """Store ``model`` in ``cache`` as huggingface_hub does: blobs, snapshot symlinks, refs."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in model.iterdir():
        content = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(content).hexdigest()
        blob.write_bytes(content)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def test_a_folder_resolves_to_itself(llama_base: Path) -> None:
    resolved = resolve_model(str(llama_base))

    assert resolved.folder == llama_base.resolve()
    assert not resolved.from_cache
    assert resolved.label == "llama-base"


def test_a_cached_hub_id_resolves_to_its_main_snapshot(tmp_path: Path, llama_base: Path) -> None:
    add_to_cache(tmp_path, "acme/tiny-llama", llama_base, "a" * 40, ref=None)
    main = add_to_cache(tmp_path, "acme/tiny-llama-chat", llama_base, "b" * 40)

    resolved = resolve_model("acme/tiny-llama-chat", cache_dir=tmp_path)

    assert resolved.folder == main
    assert resolved.from_cache
    assert resolved.label == "acme/tiny-llama-chat"


def test_a_revision_picks_that_snapshot(tmp_path: Path, llama_base: Path) -> None:
    add_to_cache(tmp_path, "acme/tiny", llama_base, "c" * 40)
    older = tmp_path / "models--acme--tiny" / "snapshots" / ("d" * 40)
    older.mkdir()
    for file in (tmp_path / "models--acme--tiny" / "snapshots" / ("c" * 40)).iterdir():
        (older / file.name).symlink_to(file)

    assert resolve_model(f"acme/tiny@{'d' * 40}", cache_dir=tmp_path).folder == older


def test_a_repo_cached_without_refs_uses_its_snapshot(tmp_path: Path, llama_base: Path) -> None:
    snapshot = add_to_cache(tmp_path, "acme/pinned", llama_base, "e" * 40, ref=None)

    assert resolve_model("acme/pinned", cache_dir=tmp_path).folder == snapshot


def test_the_cached_model_inspects_like_the_folder(tmp_path: Path, llama_base: Path) -> None:
    add_to_cache(tmp_path, "acme/tiny-llama", llama_base, "f" * 40)

    cached = load_model_info("acme/tiny-llama", cache_dir=tmp_path).summary()
    direct = load_model_info(str(llama_base)).summary()

    where = {"folder", "label", "from_cache", "commit"}
    assert {key: cached[key] for key in cached.keys() - where} == {key: direct[key] for key in direct.keys() - where}
    assert cached["from_cache"] and cached["label"] == "acme/tiny-llama"
    assert cached["commit"] == "f" * 40 and direct["commit"] is None


def test_an_uncached_hub_id_says_how_to_fetch_it_and_downloads_nothing(tmp_path: Path) -> None:
    with pytest.raises(BadInputError) as caught:
        resolve_model("acme/not-here", cache_dir=tmp_path)

    assert "hf download acme/not-here" in caught.value.message
    assert str(tmp_path) in caught.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argument", ["./no/such/folder", "/no/such/model"])
def test_a_missing_folder_is_named(argument: str) -> None:
    with pytest.raises(BadInputError, match=f"Model folder {argument} does not exist"):
        resolve_model(argument)


def test_a_file_instead_of_a_folder_is_explained(llama_base: Path) -> None:
    with pytest.raises(BadInputError, match="is a file; give the model's folder"):
        resolve_model(str(llama_base / "config.json"))
