"""A model folder's tokenizer as the merge sees it: token ids by string, special tokens, added tokens.

The facts come straight from ``tokenizer.json`` (with the ``tokenizers``
library) and ``tokenizer_config.json`` when those two say everything
transformers would use: the special tokens named in the config, with no
class defaults to fill in (``PreTrainedTokenizerFast``/``TokenizersBackend``,
or all four named), no ``special_tokens_map.json`` that says otherwise, and
every special token already in the vocabulary. That takes tens of
milliseconds where importing transformers takes seconds, which is most of
what ``inspect`` used to cost. Any other tokenizer (sentencepiece alone,
vocab/merges files, class defaults) loads with transformers from local files
only (never the network, never remote code), as the output tokenizer
always does; a test checks that both ways give the same facts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tui_merge.errors import BadInputError

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "added_tokens.json",
    "vocab.json", "merges.txt", "vocab.txt", "chat_template.jinja", "chat_template.json",
)  # fmt: skip
"""Files that make up a tokenizer; copied together from one source."""

SPECIAL_ROLES = ("bos", "eos", "pad", "unk")
"""Special tokens whose ids config.json and generation_config.json repeat as ``<role>_token_id``."""


@dataclass(frozen=True)
class AddedToken:
    """A token added on top of a tokenizer's model, as the union tokenizer adds it."""

    content: str
    special: bool


@dataclass(frozen=True)
class TokenizerFacts:
    """What the merge needs from one tokenizer."""

    folder: Path
    ids: dict[str, int]
    """Token string to id, added tokens included."""
    special_ids: dict[str, int]
    """Id of each special role the tokenizer defines (``bos``, ``eos``, ...)."""
    added: dict[str, bool]
    """Added tokens (string to whether it is special), which a union must carry over as added tokens."""

    @property
    def size(self) -> int:
        """Ids the tokenizer can produce: its largest id plus one."""
        return max(self.ids.values(), default=-1) + 1

    def by_id(self) -> list[str | None]:
        """Token strings in id order (None for an id no token has)."""
        tokens: list[str | None] = [None] * self.size
        for token, index in self.ids.items():
            tokens[index] = token
        return tokens


def has_tokenizer(folder: Path) -> bool:
    """True when the folder holds tokenizer files."""
    return any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt"))


_TRANSFORMERS_IMPORT = threading.Lock()
"""transformers resolves its names lazily, and two threads doing it at once can see a half-made module
(``module 'transformers' has no attribute 'AutoTokenizer'``): the wizard's workers take turns."""


def load_tokenizer(folder: Path):
    """The transformers tokenizer in ``folder``, read from local files only."""
    with _TRANSFORMERS_IMPORT:
        import transformers

        transformers.logging.set_verbosity_error()
        auto_tokenizer = transformers.AutoTokenizer
    try:
        return auto_tokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except MemoryError:  # short of memory is not a damaged file: said as such by the CLI
        raise
    except Exception as error:  # transformers raises many kinds; all mean the files cannot be read
        raise BadInputError(
            f"The tokenizer in {folder} cannot be read ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "fix or remove its tokenizer files, or choose another tokenizer_source."
        ) from error


def tokenizer_facts(folder: Path) -> TokenizerFacts | None:
    """The tokenizer of a model folder, or None when it has none (read once per version of its files)."""
    if not has_tokenizer(folder):
        return None
    stamp = tuple((folder / name).stat().st_mtime_ns for name in TOKENIZER_FILES if (folder / name).is_file())
    return _read_facts(folder, stamp)


@lru_cache(maxsize=32)
def _read_facts(folder: Path, stamp: tuple[int, ...]) -> TokenizerFacts:
    fast = fast_facts(folder)
    return fast if fast is not None else transformers_facts(folder)


_GENERIC_CLASSES = (None, "PreTrainedTokenizerFast", "TokenizersBackend")
"""Tokenizer classes without special-token defaults of their own: a role the config leaves out has none."""


def fast_facts(folder: Path) -> TokenizerFacts | None:
    """The facts from tokenizer.json and tokenizer_config.json alone, or None when transformers would add
    something those files do not say (see the module doc)."""
    import json

    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8")) if (
            folder / "tokenizer_config.json").is_file() else {}  # fmt: skip
        document = json.loads(path.read_text(encoding="utf-8"))
        backend = Tokenizer.from_str(json.dumps(document))
    except Exception:  # noqa: BLE001 - anything unusual is for transformers to read (and to report)
        return None
    if not isinstance(settings, dict) or (folder / "special_tokens_map.json").is_file():
        return None
    if settings.get("tokenizer_class") not in _GENERIC_CLASSES and not all(
        f"{role}_token" in settings for role in SPECIAL_ROLES
    ):
        return None
    ids = backend.get_vocab(with_added_tokens=True)
    added = {entry["content"]: bool(entry.get("special")) for entry in document.get("added_tokens") or []
             if isinstance(entry, dict) and isinstance(entry.get("content"), str)}  # fmt: skip
    for index, entry in (settings.get("added_tokens_decoder") or {}).items():
        content = entry.get("content") if isinstance(entry, dict) else None
        if content is None or ids.get(content) != int(index):
            return None  # the config adds or moves a token: transformers' reading decides
        added[content] = bool(entry.get("special", added.get(content, False)))
    special_ids = {}
    for role in SPECIAL_ROLES:
        value = settings.get(f"{role}_token")
        token = value.get("content") if isinstance(value, dict) else value
        if token is None:
            continue
        if not isinstance(token, str) or token not in ids:
            return None  # transformers would add it to the vocabulary
        special_ids[role] = ids[token]
    _check_ids(folder, ids)
    return TokenizerFacts(folder, ids, special_ids, added)


def transformers_facts(folder: Path) -> TokenizerFacts:
    """The facts as transformers reads the tokenizer (every format it knows)."""
    tokenizer = load_tokenizer(folder)
    special_ids = {}
    for role in SPECIAL_ROLES:
        index = getattr(tokenizer, f"{role}_token_id", None)
        if isinstance(index, int):
            special_ids[role] = index
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    added = {token.content: bool(token.special) for token in decoder.values()}
    ids = dict(tokenizer.get_vocab())
    _check_ids(folder, ids)
    return TokenizerFacts(folder, ids, special_ids, added)


def farthest_plausible_id(tokens: int) -> int:
    """The largest id a tokenizer of ``tokens`` tokens may use. Real vocabularies number their tokens from 0
    with few gaps; an id beyond twice the token count (plus 1024 for tiny ones) is a damaged or hostile file,
    and every table indexed by id (the merge's rows, the tokenizer's own) would grow to it."""
    return 2 * tokens + 1024


def _check_ids(folder: Path, ids: dict[str, int]) -> None:
    if not ids:
        return
    token, highest = max(ids.items(), key=lambda item: item[1])
    lowest = min(ids.values())
    if lowest < 0 or highest > farthest_plausible_id(len(ids)):
        shown = token if len(token) <= 40 else token[:37] + "..."
        wrong = highest if lowest >= 0 else lowest
        raise BadInputError(
            f"The tokenizer in {folder} gives a token ({shown!r}) the id {wrong}, far outside its {len(ids)} "
            "tokens; its tokenizer files are damaged: restore them from the model's source, or choose another "
            "tokenizer_source."
        )
