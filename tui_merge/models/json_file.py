"""Read the small JSON files a model folder ships (config.json, generation_config.json, the weight index).

Each is read whole, so a damaged or hostile file must be stopped before it
costs time or memory: the size is checked before a byte is read, a nesting
too deep for the parser and a number too long to convert are one sentence,
and the top level must be an object. Real files are far below the bounds
(a config.json is a few KB; the index of a model with 100,000 tensors about 10 MB).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError

MAX_CONFIG_BYTES = 1 << 20
"""config.json and generation_config.json."""
MAX_INDEX_BYTES = 32 << 20
"""model.safetensors.index.json and its .bin counterpart."""


def read_json_object(
    path: Path, *, limit: int = MAX_CONFIG_BYTES, fix: str = "restore it from the model's source"
) -> dict[str, Any]:
    """The JSON object in ``path``; BadInputError naming the file and ``fix`` when it cannot be one."""
    return read_json(path, limit=limit, fix=fix)


def read_json(
    path: Path, *, expect: type = dict, limit: int = MAX_CONFIG_BYTES, fix: str = "restore it from the model's source"
) -> Any:
    """The JSON value in ``path``, which must be an ``expect`` (a dict: an object; a list: an array)."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise BadInputError(
                f"{path} is {size} bytes, more than the {limit} bytes such a file can sensibly hold, so it was "
                f"refused unread; {fix}."
            )
        raw = path.read_bytes()
    except OSError as error:
        raise BadInputError(f"Cannot read {path}: {error.strerror or error}.") from error
    return parse_json_object(raw, str(path), fix, expect=expect)


def parse_json_object(raw: bytes, subject: str, fix: str, *, expect: type = dict) -> Any:
    """The JSON object (or ``expect``) in ``raw``; BadInputError saying what ``subject`` (e.g. a file) is and
    ``fix`` otherwise."""
    try:
        data = json.loads(raw)
    except RecursionError:
        raise BadInputError(f"{subject} is nested too deeply to be a model file; {fix}.") from None
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: also a number too long to convert
        raise BadInputError(f"{subject} is not valid JSON ({_short(error)}); {fix}.") from None
    if not isinstance(data, expect):
        raise BadInputError(f"{subject} is not a JSON {'object' if expect is dict else 'array'}; {fix}.")
    return data


def count(path: Path, key: str, value: Any, *, least: int = 0, most: int = 1 << 40) -> int | None:
    """``value`` as a whole number within ``least..most`` (None stays None); BadInputError naming ``key`` otherwise.

    JSON numbers reach here as Python ints or floats (``4.0`` is accepted as 4);
    ``NaN`` and ``Infinity``, which Python's parser accepts, are refused.
    """
    if value is None:
        return None
    whole = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and float(value).is_integer()
    )
    if not whole or not least <= value <= most:
        raise BadInputError(
            f"{path} gives {key} as {_shown(value)}, which must be a whole number from {least} to {most}; "
            "restore the file from the model's source."
        )
    return int(value)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 120 else text[:117] + "..."
