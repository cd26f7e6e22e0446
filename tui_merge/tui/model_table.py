"""The models table of the first step: one row per model, and the keys that mark the base, reorder, remove, and
attach or take off an adapter.

The table owns those keys (they work while it has the focus, so typing a path never triggers them) and tells its
screen what the person asked for with typed messages that name the model; the screen changes the wizard's state
and calls ``show`` again.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from tui_merge.models.info import ModelInfo, distinct_labels
from tui_merge.units import human_bytes


@dataclass
class ModelAsked(Message):
    """Something the person asked of one model's row; ``control`` is the table, for ``@on`` selectors."""

    table: ModelTable
    model: str

    @property
    def control(self) -> ModelTable:
        return self.table


class ModelTable(DataTable):
    """The chosen models: base marker, name, architecture, layers, size."""

    DEFAULT_CSS = """
    ModelTable {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("b", "mark_base", "base", tooltip="mark the highlighted model as the base", show=False),
        Binding("shift+up", "move(-1)", "up", tooltip="move the model up (higher priority)", show=False),
        Binding("shift+down", "move(1)", "down", tooltip="move the model down", show=False),
        Binding("delete,x", "remove", "remove", tooltip="remove the highlighted model", show=False),
        Binding("a", "adapter(True)", "adapter", tooltip="attach a LoRA adapter to the highlighted model", show=False),
        Binding("A", "adapter(False)", "no adapter", tooltip="take the highlighted model's adapter off", show=False),
    ]

    @dataclass
    class BaseMarked(ModelAsked):
        """Mark ``model`` as the base."""

    @dataclass
    class MoveRequested(ModelAsked):
        """Move ``model`` by ``step`` places (-1 up, 1 down)."""

        step: int

    @dataclass
    class RemoveRequested(ModelAsked):
        """Remove ``model``."""

    @dataclass
    class AdapterRequested(ModelAsked):
        """Attach an adapter to ``model`` (``attach``), or take its adapter off."""

        attach: bool

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.models: list[str] = []
        """The rows' model arguments, in order."""

    def on_mount(self) -> None:
        self.add_columns("", "model", "architecture", "layers", "size")

    def show(self, models: list[str], infos: dict[str, ModelInfo], base: str | None, cursor: str | None = None) -> None:
        """One row per model of ``models``, ``base`` marked; the cursor on ``cursor``, else where it was."""
        row = self.cursor_row
        self.clear()
        self.models = list(models)
        labels = distinct_labels([infos[argument] for argument in models])
        for argument, label in zip(models, labels):
            info = infos[argument]
            marker = Text("base", style="bold green") if argument == base else Text("")
            self.add_row(marker, Text(label), Text(info.facts.model_type or "?"), Text(str(info.depth)),
                         Text(human_bytes(info.total_bytes)), key=argument)  # fmt: skip
        if models:
            self.move_cursor(row=models.index(cursor) if cursor in models else min(row, len(models) - 1))

    @property
    def selected(self) -> str | None:
        """The highlighted model, None when there is none."""
        return self.models[self.cursor_row] if self.models else None

    def action_mark_base(self) -> None:
        if self.selected is not None:
            self.post_message(self.BaseMarked(self, self.selected))

    def action_move(self, step: int) -> None:
        if self.selected is not None:
            self.post_message(self.MoveRequested(self, self.selected, step))

    def action_remove(self) -> None:
        if self.selected is not None:
            self.post_message(self.RemoveRequested(self, self.selected))

    def action_adapter(self, attach: bool) -> None:
        if self.selected is not None:
            self.post_message(self.AdapterRequested(self, self.selected, attach))
