"""Read a config file into a validated MergeConfig, with errors that name the file, line and key."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tui_merge.config.located import KeyPath, LoadedConfig, format_path, line_of, sentence_end
from tui_merge.config.schema import MergeConfig
from tui_merge.config.validation import validate_parameters
from tui_merge.errors import BadInputError, suggestion

__all__ = ["KeyPath", "LoadedConfig", "format_path", "line_of", "load_config", "parse_config", "sentence_end"]
"""Where a config came from is ``config.located``'s; its names are here too, as they were."""


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


MAX_CONFIG_BYTES = 1 << 20
"""A real config is a few KB (a per-layer recipe of a 120-layer model, some 20 KB); beyond 1 MiB it is refused
unread."""
MAX_VALUES = 100_000
"""Scalars, lists and mappings a config may hold once YAML aliases are expanded (a billion laughs is refused
before anything walks it)."""
MAX_DEPTH = 32
"""Nesting a config may have; a real one nests five or six deep."""


def load_config(path: Path) -> LoadedConfig:
    """Read, parse and validate ``path`` (method parameters included)."""
    return parse_config(read_text(path, "Config file", MAX_CONFIG_BYTES), str(path))


def read_text(path: Path, what: str, limit: int | None = None) -> str:
    """A UTF-8 text file the user named; BadInputError saying ``what`` it is when it is missing or unreadable,
    or larger than ``limit`` bytes (checked before reading)."""
    try:
        if limit is not None and path.stat().st_size > limit:
            raise BadInputError(
                f"{what} {path} is {path.stat().st_size} bytes; a merge config is a few KB, and more than "
                f"{limit} bytes is refused unread."
            )
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{what} {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"Cannot read {what.lower()} {path}: {error}.") from None


def parse_config(text: str, source: str) -> LoadedConfig:
    """Parse config text; ``source`` names it in messages. Text beyond ``MAX_CONFIG_BYTES``, nesting beyond
    ``MAX_DEPTH`` and more than ``MAX_VALUES`` values once aliases are expanded are refused before the values
    are built."""
    data, node = parse_yaml(text, source)
    lines = _line_map(node) if data is not None else {}
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: a merge config is a YAML mapping with merge_method and models or slices.")
    try:
        config = MergeConfig.model_validate(data)
    except ValidationError as error:
        raise BadInputError(_describe(error, source, lines)) from None
    loaded = LoadedConfig(config=config, text=text, source=source, lines=lines)

    validate_parameters(loaded)
    return loaded


def parse_settings(text: str, source: str, schema: type[BaseModel], what: str) -> tuple[Any, dict[KeyPath, int]]:
    """Another tool's settings (mergekit-moe's config) validated against ``schema``, with the bounds of a merge
    config and its located one-sentence messages; the model and the line of every key."""
    data, node = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise BadInputError(f"{source}: {what} is a YAML mapping.")
    lines = _line_map(node) if node is not None else {}
    try:
        return schema.model_validate(data), lines
    except ValidationError as error:
        raise BadInputError(_describe(error, source, lines, set(schema.model_fields))) from None


def load_yaml(path: Path, what: str) -> Any:
    """The YAML value in ``path`` (a file of another tool's settings), with the bounds of a config."""
    return parse_yaml(read_text(path, what, MAX_CONFIG_BYTES), str(path))[0]


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The value of YAML ``text`` and its node tree, refusing what no config holds (see ``parse_config``)."""
    if len(text) > MAX_CONFIG_BYTES:
        raise BadInputError(f"{source} holds {len(text)} characters; a merge config is a few KB, so it is refused.")
    try:
        node = yaml.compose(text, Loader=ConfigLoader)
        if node is not None:
            _check_size(node, source)
        return yaml.load(text, Loader=ConfigLoader), node  # noqa: S506 (a SafeLoader subclass)
    except RecursionError:
        raise BadInputError(
            f"{source}: the YAML nests deeper than {MAX_DEPTH} levels; a merge config does not."
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        if "simple key" in (getattr(error, "context", None) or ""):
            # "could not find expected ':'" is reported past the line that lacks the colon.
            mark = getattr(error, "context_mark", None) or mark
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise BadInputError(f"{source}{line}: this is not valid YAML ({problem}).") from None


def _check_size(root: yaml.Node, source: str) -> None:
    """Count the values the node graph stands for, an alias counting again each time it is used (memoised,
    so a billion laughs costs a few thousand steps), and its depth; refuse what is beyond the bounds."""
    sizes: dict[int, tuple[int, int]] = {}

    def measure(node: yaml.Node) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = (1, 1)  # a node that contains itself counts once
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        measured = [measure(child) for child in children]
        count = 1 + sum(size for size, _ in measured)
        depth = 1 + max((deep for _, deep in measured), default=0)
        if depth > MAX_DEPTH:
            raise BadInputError(f"{source}: the YAML nests deeper than {MAX_DEPTH} levels; a merge config does not.")
        if count > MAX_VALUES:
            raise BadInputError(
                f"{source}: the YAML stands for more than {MAX_VALUES} values once its aliases (*name) are expanded; "
                "a merge config holds a few hundred."
            )
        sizes[id(node)] = (count, depth)
        return sizes[id(node)]

    measure(root)


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
    "input_model_parameters", "tui_merge", "model", "layer_range", "sources", "vocab", "shard_size", "device",
    "seed", "copy_tokenizer", "embeddings_from", "head_from",
    "tokenizer", "tokens", "pad_to_multiple_of", "source", "force", "kind", "token", "token_id", "chat_template",
)  # fmt: skip


def _describe(error: ValidationError, source: str, lines: dict[KeyPath, int], known: Any = None) -> str:
    errors = error.errors()
    misspelt = _misspelt_required_key(errors)
    if misspelt is not None:
        typed, wanted = misspelt
        return (f"{source}:{line_of(lines, typed)}: unknown key {format_path(typed)}; did you mean "
                f"{str(wanted[-1])!r}, which is missing?")  # fmt: skip
    first = errors[0]
    path = _key_path(first)
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        hint = suggestion(str(path[-1]), _KNOWN_KEYS if known is None else known)
        return f"{source}:{line_of(lines, path)}: unknown key {format_path(path)}{sentence_end(hint)}"
    if kind == "missing":
        return f"{source}:{line_of(lines, path[:-1])}: {format_path(path)} is missing."
    message = message.removeprefix("Value error, ")
    if not path:
        return f"{source}:1: {message}."
    return f"{source}:{line_of(lines, path)}: {format_path(path)}: {message}."


def _key_path(error: Any) -> KeyPath:
    return tuple(part for part in error["loc"] if not isinstance(part, str) or "[" not in part)


def _misspelt_required_key(errors: list[Any]) -> tuple[KeyPath, KeyPath] | None:
    """An unknown key that is a misspelling of a missing required one beside it (``merge_methd`` where
    ``merge_method`` is missing): the two paths, so one sentence names both."""
    missing = [_key_path(error) for error in errors if error["type"] == "missing"]
    for error in errors:
        if error["type"] != "extra_forbidden":
            continue
        typed = _key_path(error)
        beside = {str(path[-1]): path for path in missing if path[:-1] == typed[:-1]}
        close = difflib.get_close_matches(str(typed[-1]), list(beside), n=1, cutoff=0.6)
        if close:
            return typed, beside[close[0]]
    return None
