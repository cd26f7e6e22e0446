"""The resume journal: which shards of ``OUT.partial`` are finished, and for which merge.

One JSON object per line in ``OUT.partial/.tui_merge_journal.jsonl``: first
the fingerprint of the merge (config text, output layout, and the size and
modification time of every input file), then one line per finished shard
with its size and sha256. Each line is flushed and synced before the next
shard starts, so after a crash the journal never names a shard that is not
complete on disk; a line cut short by the crash is ignored. ``--resume``
accepts a partial folder only when the fingerprint matches and every shard
the journal names still has its recorded size and hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui_merge.errors import BadInputError

if TYPE_CHECKING:
    from tui_merge.engine.plan import Plan

JOURNAL_NAME = ".tui_merge_journal.jsonl"
_HASH_CHUNK = 16 << 20


def plan_fingerprint(plan: Plan) -> str:
    """A hash that changes when anything that decides the shards' bytes changes: the method, the device, the
    output layout, every tensor's inputs (their files and byte ranges), parameters, seed and row alignment, or
    any input file (its size and modification time).

    It is taken from the plan, not from the config's text: two configs that plan the same merge (a recipe
    reopened and saved by the wizard, which writes every layer's value out) resume each other's work.
    """
    digest = hashlib.sha256(f"{plan.method.name}:{plan.config.tui_merge.device}".encode())
    for shard in plan.shards:
        digest.update(shard.file_name.encode())
        for index in shard.tasks:
            digest.update(_task_signature(plan.tasks[index]).encode())
    add_input_files(digest, {file for task in plan.tasks for ref in task.reads for file in ref.entry.files})
    return digest.hexdigest()


def add_input_files(digest: Any, files: Iterable[Path]) -> None:
    """Each input file's real path, size and modification time into ``digest``: a file that changed since the
    journal began makes another fingerprint (the merge, ``moe`` and ``extract-lora`` journals all ask this)."""
    for file in sorted(set(files)):
        status = file.stat()
        digest.update(f"{file.resolve()}:{status.st_size}:{status.st_mtime_ns}".encode())


def append_synced(path: Path, entry: dict) -> None:
    """One JSON line at the end of a journal, flushed and synced before the work goes on."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _task_signature(task) -> str:
    """Everything about one task that its bytes depend on, with input files by their real path (the name a
    config gives a model does not count)."""

    def where(entry) -> str:
        lora = entry.lora
        adapter = f"+{where(lora.a)}/{where(lora.b)}*{lora.scale!r}{lora.transpose}" if lora is not None else ""
        scale = f"~{where(entry.scale.entry)}{entry.scale.block}" if entry.scale is not None else ""
        return f"{entry.file.resolve()}[{entry.begin}:{entry.end}]{entry.dtype}{entry.shape}{adapter}{scale}"

    reads = [f"{where(ref.entry)}rows={ref.rows}" for ref in task.reads]
    settings = (task.shape, task.dtype, task.merge, task.model_params, task.options, task.seed, task.vocab,
                task.quantize, task.scales_of, task.expert_matrices, task.base is not None,
                len(task.inputs))  # fmt: skip
    return f"{task.name}:{settings!r}:{reads}"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FinishedShard:
    """A shard the journal records as complete."""

    size: int
    sha256: str


def _finished_shard(entry: object) -> FinishedShard | None:
    """A journal line about a finished shard, or None when it is not one (a damaged journal)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("shard"), str) or "/" in entry["shard"]:
        return None
    size, digest = entry.get("size"), entry.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(digest, str):
        return None
    return FinishedShard(size, digest)


@dataclass
class Journal:
    """The journal of one partial folder."""

    path: Path
    fingerprint: str
    finished: dict[str, FinishedShard] = field(default_factory=dict)

    @classmethod
    def create(cls, folder: Path, fingerprint: str) -> Journal:
        """Start the journal of a fresh partial folder."""
        journal = cls(folder / JOURNAL_NAME, fingerprint)
        journal._append({"fingerprint": fingerprint})
        return journal

    @classmethod
    def load(cls, folder: Path) -> Journal:
        """Read the journal of a partial folder; BadInputError when there is none to trust."""
        path = folder / JOURNAL_NAME
        if not path.is_file():
            raise BadInputError(
                f"{folder} has no journal ({JOURNAL_NAME}), so it cannot be resumed; remove it (rm -r {folder}) "
                "and run without --resume."
            )
        unreadable = BadInputError(
            f"The journal {path} is damaged, so {folder} cannot be resumed; remove it (rm -r {folder}) and run "
            "without --resume."
        )
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise unreadable from None
        entries = []
        for line in text.splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                break  # the crash cut this line short; nothing after it was recorded
        if not entries or not isinstance(entries[0], dict) or not isinstance(entries[0].get("fingerprint"), str):
            raise unreadable
        journal = cls(path, entries[0]["fingerprint"])
        for entry in entries[1:]:
            shard = _finished_shard(entry)
            if shard is None:
                raise unreadable
            journal.finished[entry["shard"]] = shard
        return journal

    def record(self, file_name: str, size: int, sha256: str) -> None:
        """Note a complete shard (after the shard itself is synced)."""
        self.finished[file_name] = FinishedShard(size, sha256)
        self._append({"shard": file_name, "size": size, "sha256": sha256})

    def check(self, fingerprint: str, folder: Path) -> None:
        """Refuse to resume a different merge or shards that changed since they were recorded."""
        if fingerprint != self.fingerprint:
            raise BadInputError(
                f"{folder} was left by a merge of another config or of inputs that changed since; remove it "
                f"(rm -r {folder}) and run without --resume."
            )
        for name, shard in self.finished.items():
            path = folder / name
            if not path.is_file() or path.stat().st_size != shard.size or file_sha256(path) != shard.sha256:
                raise BadInputError(
                    f"Shard {path} no longer matches the journal (size or sha256 changed); remove {folder} "
                    "and run without --resume."
                )

    def remove(self) -> None:
        """Delete the journal once the output is complete."""
        self.path.unlink(missing_ok=True)

    def _append(self, entry: dict) -> None:
        append_synced(self.path, entry)
