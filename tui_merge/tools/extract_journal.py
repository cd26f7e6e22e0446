"""The resume journal of an extraction: which tensors of the fine-tune are done, and where their pieces lie.

One JSON object per line in ``OUT.partial/.extract_journal.jsonl``: first the fingerprint of the extraction
(its options and every input file's size and modification time), then one line per finished tensor with what
became of it and the header entries of the pieces it appended to the data file, written after the data is
synced. ``--resume`` accepts the folder only for the same fingerprint, cuts the data file back to the end of the
last recorded tensor (a piece cut short by the stop goes) and goes on with the next tensor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tui_merge.engine.journal import add_input_files, append_synced
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo

JOURNAL = ".extract_journal.jsonl"


def extraction_fingerprint(options: Any, device: str, models: list[ModelInfo]) -> str:
    """What decides the adapter's bytes: the options, the device, and every input file."""
    digest = hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode() + device.encode())
    add_input_files(digest, {file for model in models for entry in model.tensors.values() for file in entry.files})
    return digest.hexdigest()


@dataclass
class ExtractionJournal:
    """The journal of one partial folder."""

    path: Path
    fingerprint: str
    done: dict[str, dict] = field(default_factory=dict)
    """Tensor name -> its ``result`` (a ``ModuleResult`` as a dict), header ``entries`` and data ``end``."""

    @property
    def end(self) -> int:
        """Where the data of the recorded tensors ends."""
        return max((record["end"] for record in self.done.values()), default=0)

    @classmethod
    def create(cls, folder: Path, fingerprint: str) -> ExtractionJournal:
        journal = cls(folder / JOURNAL, fingerprint)
        journal._append({"fingerprint": fingerprint})
        return journal

    @classmethod
    def load(cls, folder: Path, fingerprint: str) -> ExtractionJournal:
        """The journal of ``folder`` for this extraction; BadInputError when there is none to trust."""
        path = folder / JOURNAL
        remove = f"remove it (rm -r {folder}) and run without --resume"
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            raise BadInputError(
                f"{folder} has no readable journal ({JOURNAL}), so it cannot be resumed; {remove}."
            ) from None
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the stop cut this line short; nothing after it was recorded
        if not entries or entries[0].get("fingerprint") != fingerprint:
            raise BadInputError(f"{folder} was left by an extraction with other options or inputs that changed "
                                f"since; {remove}.")  # fmt: skip
        journal = cls(path, fingerprint)
        for entry in entries[1:]:
            journal.done[entry["name"]] = entry
        return journal

    def record(self, name: str, result: Any, entries: dict[str, Any], end: int) -> None:
        """Note a finished tensor (after its data is synced)."""
        record = {"name": name, "result": asdict(result), "entries": entries, "end": end}
        self.done[name] = record
        self._append(record)

    def _append(self, entry: dict) -> None:
        append_synced(self.path, entry)
