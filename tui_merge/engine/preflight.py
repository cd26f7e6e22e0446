"""Checks on the output path before a merge starts: it must be safe to write there."""

from __future__ import annotations

import os
from pathlib import Path

from tui_merge.config.loading import LoadedConfig
from tui_merge.engine.disk import free_space
from tui_merge.engine.journal import Journal
from tui_merge.engine.lock import busy_message, lock_holder, partial_path
from tui_merge.engine.plan import Plan
from tui_merge.errors import BadInputError

DISK_MARGIN = 1.05
"""Free space wanted beyond the output's size, for the side files and filesystem overhead."""


def check_output(plan: Plan, output: Path, *, force: bool = False, resume: bool = False) -> None:
    """Refuse outputs that could damage inputs, clobber work or run out of disk (a resume needs room only for the
    shards it has still to write)."""
    target = output.resolve()
    for info in plan.models.values():
        folder = info.folder.resolve()
        if target == folder or folder in target.parents:
            raise BadInputError(
                f"Output {output} is inside input model {info.label} ({folder}); choose a folder outside every input."
            )
        if target in folder.parents:
            raise BadInputError(
                f"Input model {info.label} ({folder}) is inside output {output}; replacing it would destroy the "
                "input. Choose another output folder."
            )
    check_output_path(plan.loaded, output, force=force, resume=resume)
    parent, free = free_space(output)
    kept = _kept_bytes(plan, partial_path(output)) if resume else 0
    needed = int((plan.bytes_to_write - kept) * DISK_MARGIN)
    if free < needed:
        still = " still" if kept else ""
        raise BadInputError(
            f"Not enough disk space for {output}: the merge{still} writes {needed / 1e9:.2f} GB and {parent} has "
            f"{free / 1e9:.2f} GB free."
        )


def check_output_path(loaded: LoadedConfig, output: Path, *, force: bool = False, resume: bool = False) -> None:
    """The output checks that need no plan (a file in the way, work left by another run, an output that is
    not empty, a folder that cannot be written): the job runs them before the models are even inspected, so
    such a mistake is said in a moment, before torch is imported."""
    target = output.resolve()
    if target.exists() and not target.is_dir():
        raise BadInputError(
            f"Output {output} is a file, not a folder; --force replaces a model folder, never a file: choose "
            "another output path."
        )
    leftover = partial_path(output)
    holder = lock_holder(leftover)
    if holder is not None:
        raise BadInputError(busy_message(output, holder))
    if resume and not leftover.is_dir():
        raise BadInputError(f"There is no interrupted merge to resume at {leftover}; run without --resume.")
    if leftover.exists() and not resume:
        raise BadInputError(
            f"{leftover} is left from an interrupted merge; continue it with {resume_command(loaded, output)}, "
            f"or remove it (rm -r {leftover}) and run again."
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise BadInputError(
            f"Output {output} already exists and is not empty; choose a new folder, or pass --force to replace it "
            "once the merge has succeeded."
        )
    writable = next(folder for folder in (target, *target.parents) if folder.exists())
    if not os.access(writable, os.W_OK | os.X_OK):
        raise BadInputError(f"Cannot write in {writable}; choose an output folder where you may create files.")


def _kept_bytes(plan: Plan, partial: Path) -> int:
    """Tensor bytes of the shards a resume keeps (those its journal records as finished): already on the disk."""
    finished = Journal.load(partial).finished
    return sum(shard.size for shard in plan.shards if shard.file_name in finished)


def resume_command(loaded: LoadedConfig, output: Path) -> str:
    """The command that continues this merge: ``tui-merge run CONFIG -o OUT --resume``, or the one-off command's own."""
    if loaded.rerun:
        return f"{loaded.rerun} --resume"
    return f"tui-merge run {loaded.source} -o {output} --resume"
