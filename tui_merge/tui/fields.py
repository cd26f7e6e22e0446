"""The wizard's form fields: text fields whose cursor blinks as the app says, and fields that edit a parameter."""

from __future__ import annotations

from typing import Any

from textual import events
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Switch

from tui_merge.methods.spec import ParamSpec


class TextField(Input):
    """An ``Input`` whose cursor blinks unless the app's ``blink_cursor`` is off, and whose keys act in the order
    they were typed.

    Turning blinking off saves a redraw every half second over a slow SSH
    link, and makes a screenshot the same whenever it is taken.

    Textual inserts a typed character as soon as the field receives it, but
    runs the field's bound keys (backspace, delete, arrows, home, end,
    ctrl+u/k/w, enter) only once the key has travelled up to the app. Keys
    that arrive together, as they do over SSH or from a fast typist on a busy
    server, were then applied out of order: "backspace 4" after a "1" gave
    "4" typed first and the backspace last, so "1" remained instead of "4".
    The field runs its own bindings as the key arrives instead; keys it does
    not bind still go up to the screen and the app.
    """

    def on_mount(self) -> None:
        # Runs before Input's own mount handler, which starts the blink timer only when blinking is on.
        self.cursor_blink = getattr(self.app, "blink_cursor", True)

    async def _on_key(self, event: events.Key) -> None:
        # Runs before Input's own key handler (which restarts the blink and inserts printable characters); a key
        # handled here stops going up, so the app does not run its binding a second time.
        if not event.is_printable and await self._run_own_binding(event.key):
            event.stop()

    async def _run_own_binding(self, key: str) -> bool:
        """Run this field's own (not priority) binding of ``key`` now, as the app would on its way up; True when
        one ran. Priority bindings have already run: the app checks them before a key reaches the field."""
        for binding in self._bindings.key_to_bindings.get(key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                return True
        return False


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
