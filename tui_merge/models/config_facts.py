"""The architecture facts a merge depends on, read from a model's ``config.json``.

Families spell the same quantity differently (``hidden_size``, ``n_embd``,
``d_model``...). Reading the JSON with an alias table instead of through
``transformers.AutoConfig`` keeps inspection fast, works for model types the
installed transformers does not know, and never needs ``trust_remote_code``.
Multimodal configs keep the language model's facts under ``text_config``;
those are used when the top level lacks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError
from tui_merge.models.json_file import count, read_json_object

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


_COUNT_BOUNDS: dict[str, tuple[int, int]] = {
    "num_layers": (0, 10_000),  # 0: a model of no stack of layers (a VQ image tokenizer) says so
    "hidden_size": (1, 1 << 20),
    "num_heads": (1, 1 << 16),
    "num_kv_heads": (1, 1 << 16),
    "vocab_size": (1, 1 << 30),
    "max_positions": (1, 1 << 40),
}
"""What a real model can hold, far beyond today's largest; a value outside is a damaged or hostile file."""


def read_config_facts(folder: Path) -> ConfigFacts:
    """Read and summarise ``folder/config.json``; BadInputError when a count is not a plausible whole number."""
    path = folder / "config.json"
    if not path.is_file():
        raise BadInputError(
            f"{folder} has no config.json; a model folder needs the config.json that came with its weights."
        )
    raw = read_json_object(path)
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else {}
    counts = {}
    for key, (least, most) in _COUNT_BOUNDS.items():
        found = _first(raw, text, _ALIASES[key])
        if found and isinstance(found[1], (list, dict)):
            # Per stage (swin's heads) or per tower (lxmert's layers): every value must be a sane count, and no
            # one of them is the model's; the tensors' shapes speak for it.
            values = found[1].values() if isinstance(found[1], dict) else found[1]
            for index, value in enumerate(values):
                count(path, f"{found[0]}[{index}]", value, least=least, most=most)
            found = None
        counts[key] = count(path, found[0], found[1], least=least, most=most) if found else None
    counts["num_kv_heads"] = _kv_heads(raw, counts["num_heads"], counts["num_kv_heads"])
    theta = _first(raw, text, _ALIASES["rope_theta"])
    rope_theta = _theta(path, *theta) if theta else _rope_parameters_theta(raw, text)
    architectures = raw.get("architectures") or text.get("architectures") or ()
    for source, prefix in ((raw, ""), (text, "text_config.")):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if value is not None and not (isinstance(value, str) and re.fullmatch(r"[a-z][a-z0-9_]{1,30}", value)):
                raise BadInputError(
                    f'{path} gives {prefix}{key} as {value!r}, which is not a dtype name such as "bfloat16"; '
                    "restore the file."
                )
    model_type = raw.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise BadInputError(f"{path} gives model_type as {model_type!r}, which is not a name; restore the file.")
    return ConfigFacts(
        model_type=model_type,
        architectures=tuple(str(name) for name in architectures) if isinstance(architectures, list) else (),
        num_layers=counts["num_layers"],
        hidden_size=counts["hidden_size"],
        num_heads=counts["num_heads"],
        num_kv_heads=counts["num_kv_heads"],
        vocab_size=counts["vocab_size"],
        tie_word_embeddings=_tie(path, raw, text),
        dtype=raw.get("torch_dtype") or raw.get("dtype") or text.get("torch_dtype") or text.get("dtype"),
        max_positions=counts["max_positions"],
        rope_theta=rope_theta,
        raw=raw,
    )


def _tie(path: Path, raw: dict[str, Any], text: dict[str, Any]) -> bool:
    """``tie_word_embeddings`` (transformers' default: true), which must be true or false when given."""
    for source, prefix in ((raw, ""), (text, "text_config.")):
        value = source.get("tie_word_embeddings")
        if value is None:
            continue
        if not isinstance(value, bool):
            raise BadInputError(
                f"{path} gives {prefix}tie_word_embeddings as {value!r}, which must be true or false; restore the file."
            )
        return value
    return True


def _first(raw: dict[str, Any], text: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    """The first of ``names`` given a value, and that value: the top level first, then ``text_config``."""
    for source in (raw, text):
        for name in names:
            if source.get(name) is not None:
                return name, source[name]
    return None


def _theta(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise BadInputError(f"{path} gives {key} as {value!r}, which must be a positive number; restore the file.")
    return float(value)


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
