"""The wizard's form fields: text fields whose cursor blinks as the app says, and fields that edit a parameter."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Switch

from tui_merge.methods.spec import ParamSpec
from tui_merge.tui.key_order import run_own_binding


class TextField(Input):
    """An ``Input`` whose cursor blinks unless the app's ``blink_cursor`` is off, and whose keys act in the order
    they were typed.

    Turning blinking off saves a redraw every half second over a slow SSH
    link, and makes a screenshot the same whenever it is taken.

    The field runs its own bound keys (backspace, delete, arrows, home, end,
    ctrl+u/k/w, enter) as they arrive, in order with the characters typed
    (``key_order``); keys it does not bind still go up to the screen and the
    app.
    """

    def on_mount(self) -> None:
        # Runs before Input's own mount handler, which starts the blink timer only when blinking is on.
        self.cursor_blink = getattr(self.app, "blink_cursor", True)

    async def _on_key(self, event: events.Key) -> None:
        # Runs before Input's own key handler (which restarts the blink and inserts printable characters); a key
        # handled here stops going up, so the app does not run its binding a second time.
        if not event.is_printable and await run_own_binding(self, event.key):
            event.stop()


class EntryField(TextField):
    """A text field for adding one entry after another: enter hands its text on and empties it at once.

    Emptied by its screen once the entry was dealt with (a model inspected),
    the field ran a second entry typed meanwhile, or pasted with the first,
    on from the first, and then wiped both. A paste of several lines is
    several entries: each line that ends is handed on as if enter followed
    it, and a last line without an end stays in the field to be finished
    (a plain ``Input`` keeps the first line of a paste and drops the rest).
    """

    async def action_submit(self) -> None:
        value, self.value = self.value, ""
        self.post_message(self.Submitted(self, value))

    async def _on_paste(self, event: events.Paste) -> None:
        # Runs before Input's own paste handler, which it replaces.
        event.stop()
        event.prevent_default()
        *ended, unfinished = event.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for line in ended:
            self._insert(line)
            await self.action_submit()
        self._insert(unfinished)

    def _insert(self, text: str) -> None:
        selection = self.selection
        if selection.is_empty:
            self.insert_text_at_cursor(text)
        else:
            self.replace(text, *selection)


class InRange(Validator):
    """Accepts what the parameter's own rule accepts (``ParamSpec.problem``), typed as text."""

    def __init__(self, spec: ParamSpec) -> None:
        super().__init__()
        self.spec = spec

    def validate(self, value: str) -> ValidationResult:
        problem = self.spec.problem(self.spec.parse(value))
        return self.failure(f"{self.spec.name} {problem}") if problem else self.success()


class ParamInput(TextField):
    """A number field for one parameter, globally (``model`` None) or of one model."""

    def __init__(self, spec: ParamSpec, model: str | None, value: Any, *, id: str) -> None:
        text = "" if value is None else f"{value:g}" if isinstance(value, (int, float)) else str(value)
        kind = "integer" if spec.kind == "int" else "number"
        super().__init__(text, id=id, validators=[InRange(spec)], type=kind, compact=True)
        self.spec = spec
        """The parameter this field sets."""
        self.model = model
        """The model whose value this is; None for a global parameter."""

    @property
    def problem(self) -> str | None:
        """What is wrong with the text as it stands, or None."""
        result = self.validate(self.value)
        return result.failure_descriptions[0] if result and not result.is_valid else None

    @property
    def number(self) -> int | float:
        """The value typed (only when ``problem`` is None)."""
        return self.spec.parse(self.value)


class ParamSwitch(Switch):
    """A switch for one true-or-false parameter, globally or of one model."""

    def __init__(self, spec: ParamSpec, model: str | None, value: bool, *, id: str) -> None:
        super().__init__(value=value, id=id)
        self.spec = spec
        """The parameter this switch sets."""
        self.model = model
        """The model whose value this is; None for a global parameter."""
