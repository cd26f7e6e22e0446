"""The tools read every weight of their models, so each must be on this machine before they start."""

from __future__ import annotations

from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo


def require_downloaded(models: list[ModelInfo], tool: str) -> None:
    """Refuse a hub id whose weights are not all downloaded, naming the command that fetches them (a merge fetches
    only what it reads with ``run --download``; these tools read everything)."""
    for model in models:
        repos = {entry.hub.repo_id: entry.hub for entry in model.tensors.values() if entry.hub is not None}
        for repo in repos.values():
            raise BadInputError(
                f"{model.label}'s weights are not downloaded, and {tool} reads every one of them; fetch them with "
                f"`hf download {repo.repo_id} --revision {repo.commit}`, then run it again."
            )
