"""Turn a model argument into a local folder: a path, a hub id in the cache, or a hub id looked up on the Hub.

A hub id (``org/name``, optionally ``org/name@revision``) is looked up first
in the local Hugging Face cache with ``huggingface_hub``'s own cache
functions, so the cache layout is never re-implemented here. When the cache
does not hold its weights, the Hub is asked (``models.hub``): its metadata
files land in the cache and its tensor table is read from the weights'
headers by range, so the model is inspected and planned with nothing of its
weights downloaded. Weights are downloaded only when asked (``run
--download``, ``engine.download``): merges run on servers whose network may
be slow, metered or absent, and a merge tool that fetches 140 GB behind the
user's back is a bad neighbour. ``HF_HUB_OFFLINE=1`` keeps every lookup in
the cache.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tui_merge.errors import BadInputError
from tui_merge.models.checkpoint import weights_complete

if TYPE_CHECKING:
    from tui_merge.models.hub import HubRepo

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class ResolvedModel:
    """A model argument and the local folder it names."""

    argument: str
    """What the user typed."""
    folder: Path
    from_cache: bool
    """True when the folder is a snapshot in the Hugging Face cache."""
    adapter: Path | None = None
    """The LoRA adapter folder of a ``model+adapter`` reference (``models.lora``)."""
    hub: HubRepo | None = None
    """The Hub repository, when the cache did not hold the weights: ``folder`` is its snapshot in the cache,
    holding its metadata files, and its weights are read by range until they are downloaded."""

    @property
    def commit(self) -> str | None:
        """The commit of a hub id (a cached snapshot's folder is named by it), None for a folder."""
        if self.hub is not None:
            return self.hub.commit
        return self.folder.name if self.from_cache else None

    @property
    def label(self) -> str:
        """Short name for tables: the hub id, or the folder's name as given (a symlink keeps its own name);
        ``model+adapter`` for a model with an adapter."""
        if self.adapter is not None:
            model, _, adapter = self.argument.partition("+")
            return f"{_short(model, self.from_cache, self.folder)}+{Path(adapter).expanduser().name}"
        return _short(self.argument, self.from_cache, self.folder)


def _short(argument: str, from_cache: bool, folder: Path) -> str:
    return argument if from_cache else Path(argument).expanduser().name or folder.name


def is_hub_id(argument: str) -> bool:
    """True for ``org/name`` (``@revision`` allowed) that is not a folder here."""
    return bool(_HUB_ID.match(argument)) and not argument.startswith((".", "/", "~")) and not Path(argument).exists()


def resolve_model(argument: str, cache_dir: Path | None = None, *, marker: str = "config.json") -> ResolvedModel:
    """Find the folder for a model argument; ``cache_dir`` overrides the HF cache location. A cached hub
    snapshot counts when it holds ``marker`` (``adapter_config.json`` for a LoRA adapter)."""
    what = "Adapter" if marker == "adapter_config.json" else "Model"
    path = Path(argument).expanduser()
    if path.is_dir():
        return ResolvedModel(argument, path.resolve(), from_cache=False)
    if path.exists():
        raise BadInputError(f"{argument} is a file; give the {what.lower()}'s folder (the one holding {marker}).")
    if is_hub_id(argument):
        return _resolve_hub_id(argument, cache_dir, marker)
    raise BadInputError(f"{what} folder {argument} does not exist.")


def _resolve_hub_id(argument: str, cache_dir: Path | None, marker: str) -> ResolvedModel:
    from tui_merge.models.hub import is_offline, open_hub_repo

    repo_id, _, revision = argument.partition("@")
    folder = _cached_snapshot(argument, cache_dir, marker)
    if folder is not None and weights_complete(folder):
        return ResolvedModel(argument, folder, from_cache=True)
    if is_offline():
        cache = cache_dir or _default_cache()
        fetch = f"`hf download {repo_id}{f' --revision {revision}' if revision else ''}`"
        if folder is not None:
            raise BadInputError(
                f"{argument} is in the local Hugging Face cache ({folder}) without all its weights, and "
                f"HF_HUB_OFFLINE keeps tui-merge off the Hub: unset it and run with --download, or fetch them "
                f"with {fetch}."
            )
        raise BadInputError(
            f"{argument} is neither a folder nor a model in the local Hugging Face cache ({cache}), and "
            f"HF_HUB_OFFLINE keeps tui-merge off the Hub: fetch it with {fetch} where there is a network, or "
            "unset HF_HUB_OFFLINE."
        )
    repo = open_hub_repo(repo_id, revision or None, cache_dir, marker)
    return ResolvedModel(argument, repo.snapshot, from_cache=True, hub=repo)


def _cached_snapshot(argument: str, cache_dir: Path | None, marker: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    repo_id, _, revision = argument.partition("@")
    cache_dir = cache_dir or _default_cache()  # explicit: some huggingface_hub releases bind their default at import
    found = try_to_load_from_cache(repo_id, marker, cache_dir=cache_dir, revision=revision or None)
    if isinstance(found, str):
        return Path(found).parent
    if revision:
        return None
    return _newest_snapshot_with(repo_id, cache_dir, marker)


def _newest_snapshot_with(repo_id: str, cache_dir: Path | None, marker: str) -> Path | None:
    # A repo fetched by commit hash has no refs/main; take its newest snapshot.
    from huggingface_hub import CacheNotFound, scan_cache_dir

    try:
        cache = scan_cache_dir(cache_dir)
    except CacheNotFound:
        return None
    snapshots = [
        revision
        for repo in cache.repos
        if repo.repo_id == repo_id and repo.repo_type == "model"
        for revision in repo.revisions
        if (revision.snapshot_path / marker).is_file()
    ]
    if not snapshots:
        return None
    return max(snapshots, key=lambda revision: revision.last_modified).snapshot_path


def _default_cache() -> str:
    from huggingface_hub import constants

    return os.fspath(constants.HF_HUB_CACHE)
