"""Write the output tokenizer, and make config.json and generation_config.json name the same special ids.

A copied tokenizer is copied file by file, untouched. A union tokenizer is
its source tokenizer with the added tokens appended through transformers,
then saved; the ids it hands out are checked against the plan's, so the
rows and the tokenizer cannot disagree.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError
from tui_merge.vocab.tokenizer import SPECIAL_ROLES, TOKENIZER_FILES, AddedToken, load_tokenizer


def union_tokenizer(source: Path, added: tuple[AddedToken, ...]):
    """The tokenizer in ``source`` with ``added`` appended, each at the id the plan gave it."""
    from transformers import AddedToken as TransformersToken

    tokenizer = load_tokenizer(source)
    first_id = max(tokenizer.get_vocab().values()) + 1
    tokenizer.add_tokens([TransformersToken(token.content, special=token.special, normalized=False) for token in added])
    ids = tokenizer.convert_tokens_to_ids([token.content for token in added])
    expected = list(range(first_id, first_id + len(added)))
    if ids != expected:
        raise BadInputError(
            f"The union tokenizer built from {source} gave the added tokens ids {ids[:3]}..., not "
            f"{expected[:3]}...; its tokenizer files are unusual, so use tui_merge: {{vocab: pad}} instead."
        )
    return tokenizer


def write_tokenizer(source: Path, added: tuple[AddedToken, ...], folder: Path) -> None:
    """Put the output tokenizer into ``folder``."""
    if not added:
        for name in TOKENIZER_FILES:
            if (source / name).is_file():
                shutil.copyfile(source / name, folder / name)
        return
    union_tokenizer(source, added).save_pretrained(str(folder))


def agree_on_special_ids(config: dict[str, Any], special_ids: dict[str, int], rows: int | None) -> list[str]:
    """Set every ``<role>_token_id`` the config has to the tokenizer's id; return what changed, in words.

    An eos list (several stop tokens) stays when it holds the tokenizer's eos.
    An id the tokenizer does not define and the embedding does not have
    becomes null: it could only crash generation.
    """
    changes = []
    for role in SPECIAL_ROLES:
        key = f"{role}_token_id"
        if key not in config:
            continue
        current, wanted = config[key], special_ids.get(role)
        if wanted is not None:
            keep = isinstance(current, list) and wanted in current
            if not keep and current != wanted:
                config[key] = wanted
                changes.append(f"{key} {current} -> {wanted}")
            continue
        values = current if isinstance(current, list) else [current]
        if rows is not None and any(isinstance(value, int) and value >= rows for value in values):
            config[key] = None
            changes.append(f"{key} {current} -> null (past the {rows} rows)")
    return changes
