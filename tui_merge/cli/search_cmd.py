"""``tui-merge search RECIPE --space NAME=SPEC``: Optuna's search over a recipe's parameters, live.

Everything is checked before the first merge: the space against the method, each objective (a command's program
found, a text file read), the workers against the cores, the disk and the memory one merge needs. On a terminal
the table of trials redraws as they finish; otherwise a line per trial. The Pareto plot (several objectives) is
drawn on the terminal and written beside the study as ``RECIPE.search.pareto.svg`` (the study file's name) either way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from tui_merge.config.loading import load_config
from tui_merge.errors import BadInputError
from tui_merge.search.board import TrialBoard, pareto_plot, save_svg
from tui_merge.search.setup import build_settings
from tui_merge.search.study import SearchSettings, TrialRow, run_search


def run(args: argparse.Namespace) -> int:
    loaded = load_config(Path(args.config))
    if args.output and Path(args.output).is_dir():
        raise BadInputError(f"{args.output} is a folder; name the recipe file to write, such as best.yaml.")
    study = Path(args.study) if args.study else Path(args.config).with_suffix(".search.db")
    settings = build_settings(loaded, args.space or [], args.objective or [], study, workers=args.workers,
                              trials=args.trials, sampler=args.sampler, seed=args.seed,
                              keep_best=max(args.keep_best, 0), device=args.device, grid_steps=args.grid_steps,
                              ray_address=args.ray)  # fmt: skip
    return _search(settings, args)


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
