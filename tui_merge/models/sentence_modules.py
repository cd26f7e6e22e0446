"""The sentence-transformers files of an encoder model, which the merged folder must carry to load the same way.

A sentence-transformers model (all-MiniLM-L6-v2 and friends) is a
transformers encoder plus ``modules.json``, which lists the modules applied
after it (``1_Pooling/``, ``2_Normalize/``, ...), and the settings files
``sentence_bert_config.json`` and ``config_sentence_transformers.json``.
Without them ``SentenceTransformer(out)`` falls back to mean pooling without
normalisation, and every embedding changes. They are copied from the model
the output's tokenizer comes from (else the reference model).

A module folder that holds weights of its own (a ``Dense`` projection) is
copied from that one model, not merged; the plan says so in the log.
"""

from __future__ import annotations

from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.models.json_file import read_json

SETTINGS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def sentence_module_files(folder: Path) -> tuple[tuple[str, ...], list[str]]:
    """The files and module folders (relative to ``folder``) to copy, and notes about module weights copied
    unmerged; nothing when ``folder`` is not a sentence-transformers model. BadInputError for a ``modules.json``
    that names a path outside the folder or is not a list of modules."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return (), []
    modules = read_json(modules_path, expect=list)
    if not all(isinstance(module, dict) for module in modules):
        raise BadInputError(f"{modules_path} is not a list of modules; restore it from the model's source.")
    entries = [name for name in SETTINGS_FILES if (folder / name).is_file()]
    notes = []
    for module in modules:
        path = module.get("path", "")
        if not isinstance(path, str) or Path(path).is_absolute() or ".." in Path(path).parts:
            raise BadInputError(f"{modules_path} names module path {path!r}, which is not a folder inside the model.")
        if not path or not (folder / path).is_dir():
            continue  # "" is the transformer itself: the merged weights
        entries.append(path)
        if any(file.suffix in _WEIGHT_SUFFIXES for file in (folder / path).rglob("*") if file.is_file()):
            notes.append(f"sentence-transformers module {path} has weights of its own: copied from {folder.name}, "
                         "not merged")  # fmt: skip
    return tuple(entries), notes
