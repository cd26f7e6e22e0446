"""``tui-merge search RECIPE --space NAME=SPEC``: Optuna's search over a recipe's parameters, live.

Everything is checked before the first merge: the space against the method, each objective (a command's program
found, a text file read), the workers against the cores, the disk and the memory one merge needs. On a terminal
the table of trials redraws as they finish; otherwise a line per trial. The Pareto plot (several objectives) is
drawn on the terminal and written beside the study as ``RECIPE.search.pareto.svg`` (the study file's name) either way.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tui_merge.config.loading import load_config, parse_config
from tui_merge.errors import BadInputError
from tui_merge.search.board import TrialBoard, pareto_plot, save_svg
from tui_merge.search.objectives import parse_objective
from tui_merge.search.space import parse_dimension
from tui_merge.search.study import SearchSettings, TrialRow, check_space, recipe_of, run_search
from tui_merge.units import human_bytes


def run(args: argparse.Namespace) -> int:
    loaded = load_config(Path(args.config))
    if not args.space:
        raise BadInputError("Give at least one --space NAME=SPEC (for example --space t=0..1).")
    depth = _depth(loaded)
    dimensions = [parse_dimension(text, loaded, depth) for text in args.space]
    names = [dimension.name for dimension in dimensions]
    if len(set(names)) < len(names):
        raise BadInputError("--space names the same parameter twice; give each one once.")
    objectives = [parse_objective(text) for text in args.objective or ["perplexity"]]
    labels = [objective.label for objective in objectives]
    if len(set(labels)) < len(labels):  # two columns of one name: numbered
        objectives = [replace(objective, label=f"{index + 1}: {objective.label}")
                      for index, objective in enumerate(objectives)]  # fmt: skip
    for flag, value in (("--trials", args.trials), ("--workers", args.workers), ("--grid-steps", args.grid_steps)):
        if value is not None and value < 1:
            raise BadInputError(f"{flag} must be at least 1.")
    if args.sampler == "grid" and args.grid_steps < 2:
        raise BadInputError("--grid-steps must be at least 2 (a range's two ends).")
    if args.output and Path(args.output).is_dir():
        raise BadInputError(f"{args.output} is a folder; name the recipe file to write, such as best.yaml.")
    study = Path(args.study) if args.study else Path(args.config).with_suffix(".search.db")
    settings = SearchSettings(loaded, dimensions, objectives, study, trials=args.trials, sampler=args.sampler,
                              seed=args.seed, keep_best=max(args.keep_best, 0), device=args.device,
                              grid_steps=args.grid_steps, ray_address=args.ray)  # fmt: skip
    check_space(settings)
    settings.workers = _workers(settings, args.workers)
    return _search(settings, args)


def _depth(loaded) -> int | None:
    """The layer count of the recipe's base (else first) model, for ``@layers``."""
    from tui_merge.models.info import load_model_info

    config = loaded.config
    name = config.base_model or next((entry.model for entry in config.models or []), None)
    if name is None:
        return None
    return load_model_info(name.partition("+")[0]).depth or None


def _workers(settings: SearchSettings, asked: int | None) -> int:
    """Trials at once: as asked, or as many as half the cores, the disk and the memory allow one merge each;
    more than the disk holds is refused before the first merge."""
    from tui_merge.engine.disk import free_space
    from tui_merge.engine.job import MergeJob, plan_job
    from tui_merge.engine.preflight import DISK_MARGIN

    if settings.ray_address:
        return asked or 4  # the cluster's own scheduler places them; four in flight keeps a small cluster busy
    first = {dimension.name: dimension.suggest(_Lowest()) for dimension in settings.dimensions}
    loaded = parse_config(recipe_of(settings, first, 0), str(settings.loaded.source))
    settings.trials_folder.mkdir(parents=True, exist_ok=True)
    plan = plan_job(MergeJob(loaded, settings.trials_folder / "trial-0"))
    where, free = free_space(settings.trials_folder)
    one_merge = int(plan.bytes_to_write * DISK_MARGIN) or 1
    by_disk = free // one_merge
    if by_disk < 1:
        raise BadInputError(
            f"One trial's merge needs about {human_bytes(one_merge)} on {where}, which has {human_bytes(free)} "
            "free; make room, or give --study a file on another disk."
        )
    by_memory = _available_memory() // max(plan.peak_bytes + 2**30, 1)  # a worker's own Python and torch: ~1 GiB
    by_cores = max((os.cpu_count() or 1) // 2, 1)
    if asked is not None:
        if asked > by_disk:
            raise BadInputError(
                f"--workers {asked}: {where} has room for {by_disk} merges at once ({human_bytes(free)} free, "
                f"{human_bytes(one_merge)} each); ask for fewer."
            )
        return asked
    return max(1, min(by_cores, by_disk, by_memory))


class _Lowest:
    """Stands in for an Optuna trial: every dimension at its first value (for sizing one merge)."""

    def suggest_float(self, name, low, high, **options):
        return low

    def suggest_int(self, name, low, high, **options):
        return low

    def suggest_categorical(self, name, choices):
        return choices[0]


def _available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30  # unknown: room for a few small merges


def _search(settings: SearchSettings, args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    err = Console(stderr=True, highlight=False)
    board = TrialBoard(settings.dimensions, settings.objectives, settings.trials)
    spaces = "; ".join(dimension.describe() for dimension in settings.dimensions)
    where = f"on Ray at {settings.ray_address}" if settings.ray_address else f"{settings.workers} at once"
    err.print(f"searching {spaces} with {settings.sampler}, trials {where}; study {settings.study}")
    live_terminal = console.is_terminal

    def say(line: str) -> None:
        err.print(line)

    def said(row: TrialRow) -> None:
        """A finished trial in a line: the log of a headless search, and a failure's whole reason on a terminal."""
        if row.state == "running" or (live_terminal and row.state == "done"):
            return
        scores = ", ".join(f"{score:.4g}" for score in row.scores) if row.scores else ""
        what = f"scored {scores}" if row.state == "done" else f"failed: {row.error}"
        values = ", ".join(f"{name}={value}" for name, value in row.values.items())
        err.print(f"trial {row.number}: {values}: {what} ({row.seconds or 0:.1f}s)", soft_wrap=True)

    try:
        if live_terminal:
            from rich.live import Live

            with Live(board.render(console.height), console=console, refresh_per_second=4, transient=True) as live:

                def on_row(row: TrialRow) -> None:
                    board.update(row)
                    said(row)
                    live.update(board.render(console.height))

                result = run_search(settings, on_row, say)
        else:

            def on_row(row: TrialRow) -> None:
                board.update(row)
                said(row)

            result = run_search(settings, on_row, say)
    except KeyboardInterrupt:
        for row in board.rows.values():
            row.state = "stopped" if row.state == "running" else row.state
        Console(highlight=False).print(board.table())
        err.print(f"Stopped. The finished trials are kept in {settings.study}; the same command goes on from "
                  "there (a trial that was running runs again).")  # fmt: skip
        return 130
    for row in result.rows:
        board.update(row)
    out = Console(highlight=False)
    table = board.table()
    out.print(table)
    plot = pareto_plot(board)
    svg = settings.study.with_suffix(".pareto.svg")
    if plot is not None:
        if live_terminal:
            out.print(Text.from_ansi(plot))
        save_svg([table, plot], svg, "tui-merge search")
        out.print(f"Pareto plot written to {svg}")
    rows = {row.number: row for row in result.rows}
    if result.best:
        best = rows[result.best[0]]
        front = "the best trial" if len(result.best) == 1 else f"the Pareto front: trials {result.best}; the first"
        out.print(f"{front} is trial {best.number}; its recipe: {best.recipe} (tui-merge run {best.recipe} OUT)")
        if args.output:
            Path(args.output).write_text(Path(best.recipe).read_text(encoding="utf-8"), encoding="utf-8")
            out.print(f"wrote trial {best.number}'s recipe to {args.output}: tui-merge run {args.output} OUT")
    else:
        out.print("No trial finished with a score; see the failures above.")
    if result.kept:
        out.print("kept merges: " + ", ".join(result.kept))
    failed = sum(1 for row in result.rows if row.state == "failed")
    return 0 if result.best or not failed else 1
