"""Write the output folder: safetensors shards streamed tensor by tensor, then the files around them.

Everything goes into ``OUT.partial/`` beside ``OUT``; only when the last file
is written and synced is the folder renamed to ``OUT``, so a crash or a cancel
never leaves half a model at the output path. Each shard's header is written
first, from the shapes the plan fixed, and tensor bytes follow in plan order:
a shard is never collected in memory. Each shard is hashed as it is written,
for the resume journal and the manifest ``verify`` checks.

Writing and hashing run on one background thread fed through a short
queue, so the next tensor is merged while the last one goes to disk; the
queue holds at most two tensors, and bytes reach the file in plan order
whatever the timing. Each shard is written behind (``engine.write_behind``):
its pages go to disk window by window while the merge goes on, not all at
the closing fsync.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import threading
from contextlib import suppress
from pathlib import Path

import torch
import yaml

from tui_merge.config.pinning import pinned_recipe
from tui_merge.engine.journal import Journal
from tui_merge.engine.lock import partial_path
from tui_merge.engine.manifest import MANIFEST_NAME, RECIPE_NAME, manifest_text
from tui_merge.engine.output_config import output_model_config
from tui_merge.engine.plan import Plan
from tui_merge.engine.tasks import Shard, TensorTask
from tui_merge.engine.write_behind import WriteBehind
from tui_merge.vocab.chat_template import write_chat_template
from tui_merge.vocab.output import agree_on_special_ids, write_tokenizer


def replaced_path(output: Path) -> Path:
    """Where ``--force`` moves the old OUT for the moment of the swap: ``OUT.replaced``, or ``OUT.replaced-2``…
    when a crash in an earlier swap left one (never in the way of a finished merge)."""
    candidate = output.with_name(output.name + ".replaced")
    number = 2
    while candidate.exists():
        candidate = output.with_name(f"{output.name}.replaced-{number}")
        number += 1
    return candidate


def shard_header(tasks: tuple[TensorTask, ...], shard: Shard) -> bytes:
    """The safetensors header of a shard of ``tasks``, padded to 8 bytes, with its length prefix."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for index in shard.tasks:
        task = tasks[index]
        header[task.name] = {
            "dtype": task.dtype,
            "shape": list(task.shape),
            "data_offsets": [offset, offset + task.nbytes],
        }
        offset += task.nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded


class OutputWriter:
    """Fills ``OUT.partial`` and moves it to ``OUT`` when complete."""

    def __init__(self, plan: Plan, output: Path, *, replace: bool = False) -> None:
        self.plan = plan
        self.output = output
        self.partial = partial_path(output)
        self.replace = replace
        self._stream: ShardStream | None = None

    def start(self) -> None:
        """Create the partial folder (the caller holds the output's lock)."""
        self.partial.mkdir(parents=True)

    def keep_only(self, names: set[str]) -> None:
        """When resuming: delete everything in the partial folder but ``names`` (finished shards, journal)."""
        for path in self.partial.iterdir():
            if path.name in names:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def open_shard(self, shard: Shard) -> None:
        """Create a shard file and write its header."""
        self._stream = ShardStream(self.partial / shard.file_name)
        self._stream.put(shard_header(self.plan.tasks, shard))

    def write_tensor(self, task: TensorTask, tensor: torch.Tensor) -> None:
        """Queue one tensor's bytes for the open shard (written in order on the writer thread)."""
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        if data.numel():
            self._stream.put(data)

    def close_shard(self) -> tuple[int, str]:
        """Wait for the queued bytes, flush and sync the shard; return its size and sha256. When that fails (a
        full disk) the shard stays open, for ``close_open_shard`` to let go of."""
        result = self._stream.close()
        self._stream = None
        return result

    def close_open_shard(self) -> None:
        """Close an unfinished shard without recording it (it is rewritten on resume)."""
        if self._stream is not None:
            self._stream.abort()
            self._stream = None

    def finish(self, journal: Journal | None = None) -> None:
        """Write index, config, tokenizer, sentence-transformers files, recipe, card and the shard manifest;
        drop the journal; sync; move into place."""
        plan = self.plan
        if len(plan.shards) > 1:
            weight_map = {plan.tasks[i].name: shard.file_name for shard in plan.shards for i in shard.tasks}
            index = {"metadata": {"total_size": plan.bytes_to_write}, "weight_map": weight_map}
            self._write_text("model.safetensors.index.json", json.dumps(index, indent=2) + "\n")
        self._write_text("config.json", json.dumps(output_model_config(plan), indent=2) + "\n")
        if plan.generation_config is not None:
            settings = json.loads(json.dumps(plan.generation_config))
            tokenizer = plan.vocabulary.tokenizer
            if tokenizer is not None:
                agree_on_special_ids(settings, tokenizer.special_ids, plan.vocab_rows)
            self._write_text("generation_config.json", json.dumps(settings, indent=2) + "\n")
        tokenizer = plan.vocabulary.tokenizer
        if tokenizer is not None:
            write_tokenizer(tokenizer.source, tokenizer.added, self.partial)
            if tokenizer.chat_template is not None:
                write_chat_template(self.partial, tokenizer.chat_template)
        for name in plan.companions:
            source = plan.companion_source / name
            if source.is_dir():
                shutil.copytree(source, self.partial / name)
            else:
                shutil.copyfile(source, self.partial / name)
        self._write_text(RECIPE_NAME, pinned_recipe(plan.loaded.text, plan.models))
        self._write_text("README.md", model_card(plan))
        if journal is not None:
            shards = {name: (shard.size, shard.sha256) for name, shard in journal.finished.items()}
            self._write_text(MANIFEST_NAME, manifest_text(shards))
            journal.remove()
        move_into_place(self.partial, self.output, replace=self.replace)

    def abandon(self) -> None:
        """Remove the partial folder after a failure or cancel."""
        self.close_open_shard()
        shutil.rmtree(self.partial, ignore_errors=True)

    def _write_text(self, name: str, text: str) -> None:
        write_synced(self.partial / name, text)


class ShardStream:
    """One shard file written and hashed on its own thread, in the order the pieces were put."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("xb")
        self._behind = WriteBehind(self._file.fileno())
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | torch.Tensor | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name=f"write {path.name}", daemon=True)
        self._thread.start()

    def put(self, piece: bytes | torch.Tensor) -> None:
        """Queue bytes or a flat CPU tensor; waits while two pieces are already queued."""
        self._raise_if_failed()
        self._queue.put(piece)

    def close(self) -> tuple[int, str]:
        """Write what is queued, sync, close; the size and sha256 of the file."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()
        self._file.flush()
        os.fsync(self._file.fileno())
        size = self._file.tell()
        self._file.close()
        return size, self._hash.hexdigest()

    def abort(self) -> None:
        """Stop writing and close the file as it is: an unfinished shard is rewritten on resume, so bytes that
        cannot reach the disk any more (a full disk fails the flush that closing does) are let go."""
        self._error = self._error or InterruptedError("aborted")
        if self._thread.is_alive():
            self._queue.put(None)  # the thread skips what is queued once an error is set, so this slot frees fast
            self._thread.join()
        with suppress(OSError):
            self._file.close()

    def _drain(self) -> None:
        while True:
            piece = self._queue.get()
            if piece is None:
                return
            if self._error is not None:
                continue
            try:
                data = memoryview(piece.view(torch.uint8).numpy()) if isinstance(piece, torch.Tensor) else piece
                self._file.write(data)
                self._behind.wrote(data.nbytes if isinstance(data, memoryview) else len(data))
                self._hash.update(data)
            except BaseException as error:  # handed to the merging thread at its next put or close
                self._error = error

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


def write_synced(path: Path, text: str) -> None:
    """A text file of the partial output, synced before the folder is moved into place."""
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def move_into_place(partial: Path, output: Path, *, replace: bool) -> None:
    """Sync ``partial`` and rename it to ``output``, the one step that makes an output appear; with ``replace`` an
    earlier output is moved aside for the moment of the swap and removed after it."""
    _sync_folder(partial)
    if output.exists() and replace:
        old = replaced_path(output)
        output.rename(old)
        partial.rename(output)
        shutil.rmtree(old)
    else:
        partial.rename(output)  # replaces an empty folder at OUT; one that filled meanwhile fails
    _sync_folder(output.parent)


def model_card(plan: Plan) -> str:
    """A short README naming the method, the parents and the recipe."""
    config = plan.config
    parents = "\n".join(f"- {name}" for name in config.referenced_models())
    base = f"\nBase model: {config.base_model}\n" if config.base_model else ""
    recipe = yaml.safe_dump(yaml.safe_load(pinned_recipe(plan.loaded.text, plan.models)), sort_keys=False).rstrip()
    warnings = "".join(f"- {warning}\n" for warning in plan.warnings)
    warned = f"Warnings found before merging:\n\n{warnings}\n" if warnings else ""
    return (
        "---\ntags:\n- merge\n- tui-merge\n---\n\n"
        f"# Merged model\n\nMerged with tui-merge using the `{config.merge_method}` method.\n{base}\n"
        f"Models merged:\n\n{parents}\n\n{warned}"
        "Replay this merge with `tui-merge run tui_merge_config.yaml OUT`. The recipe:\n\n"
        f"```yaml\n{recipe}\n```\n"
    )


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
