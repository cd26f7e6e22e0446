"""``tui-merge run`` on a multi-stage recipe (``tools.stages``): each stage a merge job, in the order they need."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from tui_merge.cli.mergekit_flags import apply_mergekit_flags
from tui_merge.config.loading import parse_config
from tui_merge.engine.job import MergeJob
from tui_merge.engine.manifest import RECIPE_NAME
from tui_merge.errors import BadInputError
from tui_merge.headless import run_in_console
from tui_merge.tools.stages import needed_for, read_stages, stage_text


def run_stages(args: argparse.Namespace, text: str, output: str | None) -> int:
    """Run the stages the command asks for; the first failing stage's exit status, else 0."""
    source = str(args.config)
    stages = read_stages(text, source)
    final = stages[-1]
    if args.stage:
        stages = needed_for(stages, args.stage, source)
    if not output:
        raise BadInputError("No output folder given; add it after the recipe or with -o OUT (the final stage's).")
    work = Path(args.intermediate_dir) if args.intermediate_dir else Path(f"{output}.stages")
    folders = {stage.name: work / stage.name for stage in stages if stage.name and stage is not final}
    plan = [(stage, Path(output) if stage is final else folders[stage.name]) for stage in stages]
    # Every stage is read and checked before the first merge.
    again = f"tui-merge run {source} -o {output}" + (f" --stage {args.stage}" if args.stage else "")
    loaded = {stage.name: replace(apply_mergekit_flags(parse_config(stage_text(stage, folders), source), args),
                                  rerun=again) for stage in stages}  # fmt: skip
    print(f"{len(plan)} stages: " + ", ".join(f"{stage.label} -> {folder}" for stage, folder in plan), file=sys.stderr)
    to_run = [(stage, folder) for stage, folder in plan if not (args.lazy and _holds(folder, loaded[stage.name].text))]
    _check_room(to_run, loaded, args)
    if args.dry_run:
        return 0
    for stage, folder in plan:
        recipe = loaded[stage.name]
        if args.lazy and _holds(folder, recipe.text):
            print(f"{stage.label}: {folder} already holds its merge; kept", file=sys.stderr)
            continue
        print(f"{stage.label}: merging into {folder}", file=sys.stderr)
        intermediate = stage is not final
        job = MergeJob(
            recipe, folder, replace=args.force or (intermediate and folder.exists()),
            resume=args.resume and Path(f"{folder}.partial").is_dir(), keep_partial=True,
            allow_nonfinite=args.allow_nonfinite, verify=args.verify and not intermediate,
            allow_crimes=args.allow_crimes, download=args.download,
        )  # fmt: skip
        status = run_in_console(job, plain_progress=args.verbose > 0, quiet=args.quiet)
        if status:
            return status
    return 0


def _check_room(to_run: list, loaded: dict, args: argparse.Namespace) -> None:
    """Refuse before the first merge when the stages still to run cannot all fit on the output's disk.

    A stage whose models are all here is planned, so its size is exact; one that reads an earlier stage's output
    is taken to be as large as the largest stage it reads (a merge's output has the size of its models)."""
    from tui_merge.engine.disk import free_space
    from tui_merge.engine.job import plan_job
    from tui_merge.engine.preflight import DISK_MARGIN
    from tui_merge.units import human_bytes

    sizes: dict[str | None, int] = {}
    for stage, folder in to_run:
        try:
            sizes[stage.name] = plan_job(MergeJob(loaded[stage.name], folder, allow_crimes=args.allow_crimes)
                                         ).bytes_to_write  # fmt: skip
        except BadInputError:
            if not stage.uses:
                raise  # a stage of models that are all here: its mistake is said now, before any merge
            used = [reference.partition("+")[0] for reference in stage.uses.values()]
            sizes[stage.name] = max((sizes.get(name, 0) for name in used), default=0)
    by_disk: dict[int, tuple[Path, int, int]] = {}
    for stage, folder in to_run:
        where, free = free_space(folder)
        device = os.stat(where).st_dev
        _, _, needed = by_disk.get(device, (where, free, 0))
        by_disk[device] = (where, free, needed + int(sizes[stage.name] * DISK_MARGIN))
    for where, free, needed in by_disk.values():
        if needed > free:
            raise BadInputError(
                f"The stages still to run need about {human_bytes(needed)} on {where}, which has {human_bytes(free)} "
                "free; make room, or put the stages elsewhere with -I DIR."
            )


def _holds(folder: Path, text: str) -> bool:
    """True when ``folder`` is a finished merge of exactly this stage's text."""
    recipe = folder / RECIPE_NAME
    return recipe.is_file() and recipe.read_text(encoding="utf-8") == text
