"""Checks on the output path before a merge starts: it must be safe to write there."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tui_merge.config.loading import LoadedConfig
from tui_merge.engine.disk import free_space
from tui_merge.engine.journal import Journal
from tui_merge.engine.lock import partial_path
from tui_merge.engine.manifest import MANIFEST_NAME, RECIPE_NAME
from tui_merge.engine.plan import Plan
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo

DISK_MARGIN = 1.05
"""Free space wanted beyond the output's size, for the side files and filesystem overhead."""


def check_output(plan: Plan, output: Path, *, force: bool = False, resume: bool = False) -> None:
    """Refuse outputs that could damage inputs, clobber work or run out of disk (a resume needs room only for the
    shards it has still to write)."""
    overlap = output_overlaps_input(output, plan.models.values())
    if overlap is not None:
        raise BadInputError(overlap)
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


def output_overlaps_input(output: Path, models: Iterable[ModelInfo]) -> str | None:
    """Why ``output`` cannot hold the merge of ``models`` (it is inside an input, or holds one), or None; the one
    rule the job, the wizard and the plain wizard all ask."""
    target = output.expanduser().resolve()
    for info in models:
        folder = info.folder.resolve()
        if target == folder or folder in target.parents:
            return (f"Output {output} is inside input model {info.label} ({folder}); choose a folder outside every "
                    "input.")  # fmt: skip
        if target in folder.parents:
            return (f"Input model {info.label} ({folder}) is inside output {output}; replacing it would destroy the "
                    "input. Choose another output folder.")  # fmt: skip
    return None


def check_output_path(loaded: LoadedConfig, output: Path, *, force: bool = False, resume: bool = False) -> None:
    """The output checks that need no plan (work left by another run, an output that is not empty): the job runs
    them as soon as it holds the output's lock, before the models are even inspected, so such a mistake is said
    in a moment, before torch is imported. ``check_output_safety`` comes first, before the lock."""
    leftover = partial_path(output)
    if resume and not leftover.is_dir():
        raise BadInputError(f"There is no interrupted merge to resume at {leftover}; run without --resume.")
    if leftover.exists() and not resume:
        raise BadInputError(
            f"{leftover} is left from an interrupted merge; continue it with {resume_command(loaded, output)}, "
            f"or remove it (rm -r {leftover}) and run again."
        )
    target = output.resolve()
    if target.exists() and any(target.iterdir()) and not force:
        raise BadInputError(
            f"Output {output} already exists and is not empty; choose a new folder, or pass --force to replace it "
            "once the merge has succeeded."
        )


def check_output_safety(output: Path, *, force: bool = False) -> None:
    """Refuse an output whose replacement would destroy what is not a merge, before anything is created.

    A merge replaces its output folder whole (``OUT.partial`` renamed onto it), so the output may never be a
    file, the filesystem's root, the current folder or one holding it, or a home folder or one holding homes,
    whatever the flags say; and ``--force`` replaces only a folder that is an earlier tui-merge output (its
    recipe or manifest is there) or an empty one, never a folder of someone's own files.
    """
    target = output.expanduser().resolve()
    try:
        exists = target.exists()
    except OSError as error:  # a folder on the way that this user may not enter
        raise BadInputError(
            f"Cannot write in {target.parent} ({error.strerror}); choose an output folder where you may create files."
        ) from None
    if exists and not target.is_dir():
        raise BadInputError(
            f"Output {output} is a file, not a folder; --force replaces a model folder, never a file: choose "
            "another output path."
        )
    if target == target.parent:
        raise BadInputError(f"Output {output} is the root of the filesystem; choose a new folder for the merge.")
    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents:
        what = "the current folder" if target == cwd else f"a folder that holds the current folder ({cwd})"
        raise BadInputError(
            f"Output {output} is {what}, which the merge would replace whole; choose a new folder such as ./merged."
        )
    for home in _home_folders():
        if target == home or target in home.parents:
            what = "a home folder" if target == home else f"a folder that holds the home folder {home}"
            raise BadInputError(
                f"Output {output} is {what}, which the merge would replace whole; choose a new folder inside it."
            )
    if force and target.is_dir():
        names = sorted(path.name for path in target.iterdir())
        if names and not {MANIFEST_NAME, RECIPE_NAME} & set(names):
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            raise BadInputError(
                f"Output {output} holds files that no tui-merge run wrote ({shown}); a merge replaces only an "
                "earlier merge or an empty folder, so nothing was touched: choose another output folder."
            )


def _home_folders() -> set[Path]:
    """This user's home and every account's home that is a real folder other than the root."""
    homes = set()
    try:
        homes.add(Path.home())
        import pwd

        homes |= {Path(entry.pw_dir) for entry in pwd.getpwall() if entry.pw_dir}
    except (ImportError, OSError, RuntimeError):  # no user database (Windows) or no home: the others still count
        pass
    found = set()
    for home in homes:
        try:
            resolved = home.resolve()
        except OSError:
            continue
        if resolved.is_dir() and resolved != resolved.parent:
            found.add(resolved)
    return found


def _kept_bytes(plan: Plan, partial: Path) -> int:
    """Tensor bytes of the shards a resume keeps (those its journal records as finished): already on the disk."""
    finished = Journal.load(partial).finished
    return sum(shard.size for shard in plan.shards if shard.file_name in finished)


def resume_command(loaded: LoadedConfig, output: Path) -> str:
    """The command that continues this merge: ``tui-merge run CONFIG -o OUT --resume``, or the one-off command's own."""
    if loaded.rerun:
        return f"{loaded.rerun} --resume"
    return f"tui-merge run {loaded.source} -o {output} --resume"
