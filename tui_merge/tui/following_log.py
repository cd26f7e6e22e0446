"""A log that keeps its last line in sight when it gets shorter."""

from __future__ import annotations

from textual.events import Resize
from textual.widgets import RichLog


class FollowingLog(RichLog):
    """A ``RichLog`` that stays at its end when the screen takes lines from it.

    ``RichLog`` scrolls to its end when a line is written, not when it is made
    shorter: a status that grew to two lines as a job finished hid the log's
    last line (the LoRA extraction's final module, under its "Wrote the
    adapter" line). Shrinking now keeps the end in sight, unless the person
    had scrolled away from it.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, wrap=True, markup=False)
        self._height: int | None = None

    def on_resize(self, event: Resize) -> None:
        shrunk_by = 0 if self._height is None else self._height - event.size.height
        self._height = event.size.height
        if self.auto_scroll and shrunk_by > 0 and self.scroll_y >= self.max_scroll_y - shrunk_by:
            self.scroll_end(animate=False)
