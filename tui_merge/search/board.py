"""How a search shows itself: a table of trials that updates as they finish (best marked), and for several
objectives the Pareto front as a scatter plot (plotext), on the terminal and as an SVG beside the study."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from tui_merge.search.objectives import Objective
from tui_merge.search.space import Dimension
from tui_merge.search.study import TrialRow
from tui_merge.search.sweep import sparkline


def non_dominated(points: dict[int, tuple[float, ...]], directions: list[str]) -> set[int]:
    """The numbers of the points no other point is at least as good as in every objective and better in one."""
    signs = [1 if direction == "minimize" else -1 for direction in directions]
    costs = {number: [sign * value for sign, value in zip(signs, values)] for number, values in points.items()}

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    return {n for n, cost in costs.items() if not any(dominates(other, cost) for m, other in costs.items() if m != n)}


def best_of(rows: list[TrialRow], directions: list[str]) -> set[int]:
    """The best finished trial (one objective, lowest number on a tie) or the Pareto front (several)."""
    done = {row.number: row.scores for row in rows if row.state == "done" and row.scores is not None}
    if not done:
        return set()
    if len(directions) == 1:
        sign = 1 if directions[0] == "minimize" else -1
        return {min(done, key=lambda number: (sign * done[number][0], number))}
    return non_dominated(done, directions)


def shown_value(value: Any) -> str:
    """A value for a table cell: numbers short, a per-layer list as its shape and range."""
    if isinstance(value, list) and value and all(isinstance(item, int | float) for item in value):
        return f"{sparkline(value)} {min(value):g}..{max(value):g}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value)


class TrialBoard:
    """The trials so far, drawn as one table; ``render`` is what a ``rich.live.Live`` shows."""

    def __init__(self, dimensions: list[Dimension], objectives: list[Objective], wanted: int | None) -> None:
        self.dimensions, self.objectives, self.wanted = dimensions, objectives, wanted
        self.rows: dict[int, TrialRow] = {}
        self.directions = [objective.direction for objective in objectives]

    def update(self, row: TrialRow) -> None:
        self.rows[row.number] = row

    def table(self, limit: int | None = None) -> Table:
        rows = sorted(self.rows.values(), key=lambda row: row.number)
        best = best_of(rows, self.directions)
        if limit is not None and len(rows) > limit:  # the best and the latest fit the screen
            latest = {row.number for row in rows[-max(limit - len(best), 1) :]}
            rows = [row for row in rows if row.number in latest or row.number in best]
        done = sum(1 for row in self.rows.values() if row.state in ("done", "failed"))
        title = f"trials: {done} finished" + (f" of {self.wanted}" if self.wanted else "")
        title += "   ★ best" if len(self.directions) == 1 else "   ★ on the Pareto front"
        table = Table(title=title, title_justify="left", box=None, padding=(0, 2, 0, 0))
        table.add_column("trial", justify="right")
        for dimension in self.dimensions:
            table.add_column(dimension.name)
        for objective in self.objectives:
            arrow = "↓" if objective.direction == "minimize" else "↑"
            table.add_column(f"{objective.label} {arrow}", justify="right")
        table.add_column("time", justify="right")
        table.add_column("state", no_wrap=True, overflow="ellipsis", max_width=40)
        for row in rows:
            marked = row.number in best
            style = "bold green" if marked else ("red" if row.state == "failed" else "")
            scores = [f"{score:.4g}" for score in row.scores] if row.scores else ["-"] * len(self.objectives)
            state = row.state if row.state != "failed" else f"failed: {row.error or ''}"
            table.add_row(
                Text(f"{'★ ' if marked else ''}{row.number}", style=style),
                *[shown_value(row.values.get(dimension.name)) for dimension in self.dimensions],
                *[Text(score, style=style) for score in scores],
                f"{row.seconds:.1f}s" if row.seconds is not None else "",
                Text(state, style="red" if row.state == "failed" else "dim"),
            )
        return table

    def render(self, height: int = 24) -> Group:
        return Group(self.table(limit=max(height - 4, 3)))


def pareto_plot(board: TrialBoard, width: int = 72, height: int = 20) -> str | None:
    """The first two objectives of every finished trial, the Pareto front marked, as text with colours (None with
    fewer than two objectives or no finished trial)."""
    import plotext

    if len(board.objectives) < 2:
        return None
    rows = [row for row in board.rows.values() if row.state == "done" and row.scores]
    if not rows:
        return None
    front = best_of(rows, board.directions)
    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    others = [row for row in rows if row.number not in front]
    # ASCII markers: braille and stars are drawn at other widths by some terminals' and SVG viewers' fonts
    if others:
        plotext.scatter([row.scores[0] for row in others], [row.scores[1] for row in others], marker=".",
                        label="trials")  # fmt: skip
    on_front = [row for row in rows if row.number in front]
    plotext.scatter([row.scores[0] for row in on_front], [row.scores[1] for row in on_front], marker="o",
                    color="green", label="Pareto front")  # fmt: skip
    plotext.xlabel(board.objectives[0].label)
    plotext.ylabel(board.objectives[1].label)
    return plotext.build()


def save_svg(parts: list[Any], path: Path, title: str, width: int = 100) -> None:
    """Draw ``parts`` (rich renderables or text with colours) as a terminal picture in ``path``."""
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True, color_system="truecolor")
    for part in parts:
        console.print(Text.from_ansi(part) if isinstance(part, str) else part)
    console.save_svg(str(path), title=title)
