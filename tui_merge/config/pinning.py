"""A recipe's hub ids pinned to the commits a merge read, so its replay reads exactly the same files.

A recipe names ``org/model``: the Hub's main branch, which moves. The recipe a merge leaves in its output
(``tui_merge_config.yaml``, and the model card's copy) names ``org/model@<commit>`` instead, the commit its
weights were read at (the Hub's answer, or the cached snapshot's folder, which huggingface_hub names by
commit); a branch or tag named in the recipe (``org/model@v1``) is replaced by its commit the same way. The
rest of the text is kept as written, comments too: each hub id is replaced where it stands as a whole YAML
value (``model: org/a``, ``- org/a``, quoted or not). Folders are left alone, and so are the nested
``{path: ..., revision: ...}`` references of mergekit, which the text does not hold as one value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from tui_merge.models.info import ModelInfo


def pinned_name(name: str, info: ModelInfo) -> str:
    """``org/a@<commit>`` for a hub id named ``name`` (at a branch, a tag, or nothing); anything else as named."""
    commit = info.source.commit
    repo_id, _, revision = name.partition("@")
    if commit is None or revision == commit or "+" in name or info.source.argument != name:
        return name
    return f"{repo_id}@{commit}"


def pinned_recipe(text: str, models: Mapping[str, ModelInfo]) -> str:
    """``text`` with every unpinned hub id among ``models`` (by the name the recipe gives) at its commit."""
    for name, info in models.items():
        pinned = pinned_name(name, info)
        if pinned == name:
            continue
        value = re.compile(rf"(?m)(?<=[:\-\[,]\s)(?P<quote>[\"']?){re.escape(name)}(?P=quote)(?=\s*(?:#|,|\]|\}}|$))")
        text = value.sub(rf"\g<quote>{pinned}\g<quote>", text)
    return text


def pinned_models(models: Mapping[str, ModelInfo]) -> dict[str, ModelInfo]:
    """``models`` keyed by their pinned names, as the pinned recipe names them."""
    return {pinned_name(name, info): info for name, info in models.items()}
