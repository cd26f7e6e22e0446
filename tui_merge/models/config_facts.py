"""The architecture facts a merge depends on, read from a model's ``config.json``.

Families spell the same quantity differently (``hidden_size``, ``n_embd``,
``d_model``...). Reading the JSON with an alias table instead of through
``transformers.AutoConfig`` keeps inspection fast, works for model types the
installed transformers does not know, and never needs ``trust_remote_code``.
Multimodal configs keep the language model's facts under ``text_config``;
those are used when the top level lacks them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError

_ALIASES: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "max_positions": ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"),
    "rope_theta": ("rope_theta", "rotary_emb_base"),
}


@dataclass(frozen=True)
class ConfigFacts:
    """What ``config.json`` says about a model's shape and training."""

    model_type: str | None
    architectures: tuple[str, ...]
    num_layers: int | None
    hidden_size: int | None
    num_heads: int | None
    num_kv_heads: int | None
    """Key/value heads; equal to ``num_heads`` for models without grouped-query attention."""
    vocab_size: int | None
    tie_word_embeddings: bool
    dtype: str | None
    """The dtype the config declares (``torch_dtype`` or ``dtype``), e.g. ``bfloat16``."""
    max_positions: int | None
    rope_theta: float | None
    raw: dict[str, Any]
    """The whole parsed config.json, for writers that must copy it."""


def read_config_facts(folder: Path) -> ConfigFacts:
    """Read and summarise ``folder/config.json``."""
    path = folder / "config.json"
    if not path.is_file():
        raise BadInputError(
            f"{folder} has no config.json; a model folder needs the config.json that came with its weights."
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadInputError(f"{path} is not valid JSON ({error}); restore the file from the model's source.") from error
    if not isinstance(raw, dict):
        raise BadInputError(f"{path} is not a JSON object; restore the file from the model's source.")
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else {}
    values = {key: _first(raw, text, names) for key, names in _ALIASES.items()}
    numbers = {key: _number(path, key, value) for key, value in values.items()}
    numbers["num_kv_heads"] = _kv_heads(raw, numbers["num_heads"], numbers["num_kv_heads"])
    if numbers["rope_theta"] is None:
        numbers["rope_theta"] = _rope_parameters_theta(raw, text)
    architectures = raw.get("architectures") or text.get("architectures") or ()
    return ConfigFacts(
        model_type=raw.get("model_type"),
        architectures=tuple(str(name) for name in architectures),
        num_layers=_int(numbers["num_layers"]),
        hidden_size=_int(numbers["hidden_size"]),
        num_heads=_int(numbers["num_heads"]),
        num_kv_heads=_int(numbers["num_kv_heads"]),
        vocab_size=_int(numbers["vocab_size"]),
        tie_word_embeddings=bool(raw.get("tie_word_embeddings", text.get("tie_word_embeddings", True))),
        dtype=raw.get("torch_dtype") or raw.get("dtype") or text.get("torch_dtype") or text.get("dtype"),
        max_positions=_int(numbers["max_positions"]),
        rope_theta=numbers["rope_theta"],
        raw=raw,
    )


def _first(raw: dict[str, Any], text: dict[str, Any], names: tuple[str, ...]) -> Any:
    for source in (raw, text):
        for name in names:
            if source.get(name) is not None:
                return source[name]
    return None


def _number(path: Path, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"{path} gives {key.replace('_', ' ')} as {value!r}, which is not a number.")
    return value


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _kv_heads(raw: dict[str, Any], num_heads: float | None, declared: float | None) -> float | None:
    # Falcon's original layout ignores num_kv_heads: one shared key/value head
    # with multi_query, else one per query head.
    if raw.get("model_type") == "falcon" and not raw.get("new_decoder_architecture"):
        return 1 if raw.get("multi_query", True) else num_heads
    return num_heads if declared is None else declared


def _rope_parameters_theta(raw: dict[str, Any], text: dict[str, Any]) -> float | None:
    # transformers 5 moved rope_theta into a rope_parameters mapping.
    for source in (raw, text):
        parameters = source.get("rope_parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("rope_theta"), (int, float)):
            return float(parameters["rope_theta"])
    return None
