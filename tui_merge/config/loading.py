"""Read a config file into a validated MergeConfig, with errors that name the file, line and key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from tui_merge.config.schema import MergeConfig
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import suggestion

KeyPath = tuple[str | int, ...]


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-8`` as a number as YAML 1.2 (and mergekit's users) expect.

    YAML 1.1 only knows floats with a dot and a signed exponent, so plain
    PyYAML reads ``eps: 1e-8`` as the string "1e-8".
    """


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


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


def load_config(path: Path) -> LoadedConfig:
    """Read, parse and validate ``path`` (method parameters included)."""
    return parse_config(read_text(path, "Config file"), str(path))


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file the user named; BadInputError saying ``what`` it is when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{what} {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"Cannot read {what.lower()} {path}: {error}.") from None


def parse_config(text: str, source: str) -> LoadedConfig:
    """Parse config text; ``source`` names it in messages."""
    try:
        data = yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
        lines = _line_map(yaml.compose(text, Loader=ConfigLoader)) if data is not None else {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        if "simple key" in (getattr(error, "context", None) or ""):
            # "could not find expected ':'" is reported past the line that lacks the colon.
            mark = getattr(error, "context_mark", None) or mark
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BadInputError(f"{source}{line}: this is not valid YAML ({problem}).") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: a merge config is a YAML mapping with merge_method and models or slices.")
    try:
        config = MergeConfig.model_validate(data)
    except ValidationError as error:
        raise BadInputError(_describe(error, source, lines)) from None
    loaded = LoadedConfig(config=config, text=text, source=source, lines=lines)
    from tui_merge.config.validation import validate_parameters

    validate_parameters(loaded)
    return loaded


def _line_map(node: yaml.Node, path: KeyPath = ()) -> dict[KeyPath, int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            lines.update({p: n for p, n in _line_map(value, child).items() if p != child})
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, index)))
    return lines


_KNOWN_KEYS = (
    "merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "tokenizer_source",
    "tui_merge", "model", "layer_range", "sources", "vocab", "shard_size", "device", "seed", "copy_tokenizer",
)  # fmt: skip


def _describe(error: ValidationError, source: str, lines: dict[KeyPath, int]) -> str:
    first = error.errors()[0]
    path: KeyPath = tuple(part for part in first["loc"] if not isinstance(part, str) or "[" not in part)
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        hint = suggestion(str(path[-1]), _KNOWN_KEYS)
        return f"{source}:{line_of(lines, path)}: unknown key {format_path(path)}{sentence_end(hint)}"
    if kind == "missing":
        return f"{source}:{line_of(lines, path[:-1])}: {format_path(path)} is missing."
    message = message.removeprefix("Value error, ")
    if not path:
        return f"{source}:1: {message}."
    return f"{source}:{line_of(lines, path)}: {format_path(path)}: {message}."


def sentence_end(text: str) -> str:
    """Close a message with a full stop unless it ends in a question."""
    return text if text.endswith("?") else f"{text}."
