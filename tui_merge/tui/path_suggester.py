"""Complete folder (and optionally file) names in an Input as the user types a path."""

from __future__ import annotations

from pathlib import Path

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests the first sub-folder (or file with one of ``file_suffixes``) whose name continues what was typed."""

    def __init__(self, file_suffixes: tuple[str, ...] = ()) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.file_suffixes = file_suffixes

    async def get_suggestion(self, value: str) -> str | None:
        if not value or value.startswith(("http:", "https:")):
            return None
        typed = Path(value).expanduser()
        folder, prefix = (typed, "") if value.endswith("/") else (typed.parent, typed.name)
        try:
            names = sorted(
                entry.name + ("/" if entry.is_dir() else "")
                for entry in folder.iterdir()
                if entry.name.startswith(prefix)
                and not entry.name.startswith(".")
                and (entry.is_dir() or entry.name.endswith(self.file_suffixes or ("/",)))
            )
        except OSError:
            return None
        return value + names[0][len(prefix) :] if names else None
