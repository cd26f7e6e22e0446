"""Changing values of a config's text in place, keeping every comment and the layout around them.

``sweep`` writes each candidate this way, so ``sweep -o best.yaml`` is the template a person wrote (its comments,
its one line per layer) with only the swept values changed. A value is written in YAML's flow style on its key's
line (``t: [0, 0.5, 1]``); a block value it replaces goes, with the comments inside it (they spoke of the old
value). A key the text lacks is added to its mapping with the indentation of the keys beside it. Where the text
cannot be edited so (a mapping written in flow style, ``{model: a}``, gets no new key), ``set_values`` returns
None and the caller writes the data out whole.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

Path = tuple[str | int, ...]


def set_values(text: str, changes: dict[Path, Any]) -> str | None:
    """``text`` with the value at each key path replaced (or added); None when one cannot be edited in place."""
    for path, value in changes.items():
        edited = _set_value(text, path, value)
        if edited is None:
            return None
        text = edited
    return text


def _set_value(text: str, path: Path, value: Any) -> str | None:
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return None
    for depth, key in enumerate(path):
        child = _child(node, key)
        if child is None:
            rest: Any = value
            for name in reversed(path[depth + 1 :]):
                rest = {name: rest}
            return _add_key(text, node, key, rest) if isinstance(key, str) else None
        node = child
    end = _end(node)
    start = node.start_mark.index
    if _is_block(node):  # the old value's last line goes whole, with the comment that spoke of it
        end = len(text) if text.find("\n", end) < 0 else text.find("\n", end)
        colon = text.rfind(":", 0, start)
        if isinstance(path[-1], str) and colon >= 0 and not text[colon + 1 : start].strip(" \n"):
            return text[: colon + 1] + " " + _flow(value) + text[end:]  # on its key's line: ``t: 0.5``
    return text[:start] + _flow(value) + text[end:]


def _is_block(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style and bool(node.value)


def _child(node: yaml.Node, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(key, str):
        return next((value for name, value in node.value if name.value == key), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _add_key(text: str, mapping: yaml.MappingNode, key: str, value: Any) -> str | None:
    """A line ``key: value`` after the mapping's last entry, indented as its first key (block style only)."""
    if mapping.flow_style or not mapping.value:
        return None
    indent = mapping.value[0][0].start_mark.column
    line_end = text.find("\n", _end(mapping))
    line_end = len(text) if line_end < 0 else line_end
    return f"{text[:line_end]}\n{' ' * indent}{_flow({key: value})[1:-1]}{text[line_end:]}"


def _end(node: yaml.Node) -> int:
    """Where the node's own text ends: a block collection's end mark lies at the next key, past comments."""
    if _is_block(node):
        last = node.value[-1]
        return _end(last[1] if isinstance(last, tuple) else last)
    return node.end_mark.index


def _flow(value: Any) -> str:
    """``value`` as one line of YAML flow style, as PyYAML writes it (so any string reads back as itself)."""
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).strip().removesuffix("\n...")


def with_values(text: str, changes: dict[Path, Any]) -> str:
    """``text`` with the values changed, in place where it can be (``set_values``); else the changed data written
    out whole (a mapping written in flow style to add to), so the result always holds exactly these values."""
    data = yaml.safe_load(text)
    for path, value in changes.items():
        _put(data, path, value)
    edited = set_values(text, changes)
    if edited is None or yaml.safe_load(edited) != data:
        return yaml.safe_dump(data, sort_keys=False)
    return edited


def _put(data: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {}) if isinstance(key, str) else data[key]
    data[path[-1]] = value
