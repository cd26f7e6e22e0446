"""Complete folder names in an Input as the user types a path."""

from __future__ import annotations

from pathlib import Path

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests the first sub-folder whose name continues what was typed."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value or value.startswith(("http:", "https:")):
            return None
        typed = Path(value).expanduser()
        folder, prefix = (typed, "") if value.endswith("/") else (typed.parent, typed.name)
        try:
            names = sorted(
                entry.name
                for entry in folder.iterdir()
                if entry.is_dir() and entry.name.startswith(prefix) and not entry.name.startswith(".")
            )
        except OSError:
            return None
        return value + names[0][len(prefix) :] + "/" if names else None
