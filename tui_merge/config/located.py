"""A config with where it came from: its exact text, its file, and the line of every key, for messages.

Kept apart from the loading itself so that the checks run while loading (``validation``) can point into the
file without importing the loader that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tui_merge.config.schema import MergeConfig

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedConfig:
    """A config together with where it came from, so later errors can point into the file."""

    config: MergeConfig
    text: str
    """The file's exact text: written next to the output as the replayable recipe."""
    source: str
    """File name used in messages."""
    lines: dict[KeyPath, int] = field(default_factory=dict)
    """1-based line of every key and list item."""
    rerun: str = ""
    """The command that runs this config again, for configs built from a command line (``blockmerge``,
    ``circuit``); empty when it is ``tui-merge run SOURCE``."""

    def where(self, path: KeyPath) -> str:
        """``merge.yaml:7: models[1].parameters.density`` for a key path."""
        return f"{self.source}:{self.line_of(path)}: {format_path(path)}"

    def line_of(self, path: KeyPath) -> int:
        """Line of the deepest known prefix of ``path``."""
        return line_of(self.lines, path)


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """Line of the deepest prefix of ``path`` that the map knows; 1 if none."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 1


def format_path(path: KeyPath) -> str:
    """``('models', 1, 'parameters')`` -> ``models[1].parameters``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def sentence_end(text: str) -> str:
    """Close a message with a full stop unless it ends in a question."""
    return text if text.endswith("?") else f"{text}."
