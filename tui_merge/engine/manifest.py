"""``tui_merge_manifest.json``: the size and sha256 of every shard a merge wrote, for ``tui-merge verify``.

The hashes are the ones the resume journal records as each shard is synced
(computed from the bytes on their way to the disk, so writing them costs no
second read). ``verify`` hashes the shards again: a bit flipped anywhere
after the merge (a bad disk, a copy cut short, a hand edit) fails, naming
the shard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.models.json_file import MAX_INDEX_BYTES, read_json_object

MANIFEST_NAME = "tui_merge_manifest.json"

RECIPE_NAME = "tui_merge_config.yaml"
"""The recipe every merge leaves in its output; with the manifest, what marks a folder as an earlier merge."""


def manifest_text(shards: Mapping[str, tuple[int, str]]) -> str:
    """The manifest for ``shards`` (file name -> size, sha256)."""
    listed = {name: {"size": size, "sha256": digest} for name, (size, digest) in sorted(shards.items())}
    return json.dumps({"shards": listed}, indent=2) + "\n"


def read_manifest(folder: Path) -> dict[str, tuple[int, str]] | None:
    """The shards ``folder``'s manifest lists (None when it has none); BadInputError when it is damaged."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    shards = read_json_object(path, limit=MAX_INDEX_BYTES, fix="the folder was changed after the merge").get("shards")
    listed: dict[str, tuple[int, str]] = {}
    for name, entry in shards.items() if isinstance(shards, dict) else [(None, None)]:
        size = entry.get("size") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(name, str) and Path(name).name == name and type(size) is int and isinstance(digest, str)):
            raise BadInputError(f"{path} is damaged: each shard needs a size and a sha256.")
        listed[name] = (size, digest)
    return listed
