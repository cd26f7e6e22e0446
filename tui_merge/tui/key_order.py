"""Keys acted on in the order they were typed, however fast they arrive.

Textual hands each key to the widget focused when the app reads it, and runs
a widget's bound keys (backspace, arrows, enter, the Layers table's editing
keys) only once the key has travelled up from the widget to the app, while a
text field inserts a typed character at once. Keys that arrive together, as
they do over SSH (a burst of keystrokes reaches the app in one read) or from
a fast typist on a busy server, then went wrong in two ways: a text field
inserted characters before a backspace that came first ("backspace 4" after
a "1" left "1"), and the keys typed after one that opens a text field went
to the widget that had the focus (``e0.4`` in the Layers table took the
layer wholly from the first model, then typed nothing).

A widget that binds keys runs its own bindings as each key arrives
(``run_own_binding``); the Layers table keeps the keys that come after it
asked for its editor and hands them to the editor once it is open, and the
editor does the same for the keys after enter or escape (``TypeAhead``);
tab and shift+tab are the app's priority bindings, which move the focus as
the app reads them (``WizardApp.BINDINGS``).
"""

from __future__ import annotations

from textual import events
from textual.widget import Widget


async def run_own_binding(widget: Widget, key: str) -> bool:
    """Run ``widget``'s own binding of ``key`` now, as the app would once the key reached it; True when one ran.

    Only the widget's non-priority bindings: the app runs priority bindings
    before it hands a key to the focused widget, and the widget's own come
    first in the chain it searches afterwards, so the same binding runs, only
    sooner. A key that ran here must be stopped, or the app runs it again.
    """
    for binding in widget._bindings.key_to_bindings.get(key, ()):
        if not binding.priority and await widget.app.run_action(binding.action, widget):
            return True
    return False


class TypeAhead:
    """Where the keys that reach a widget go while the focus passes from it to another widget and back.

    The app hands a key to the widget focused when it reads the key, and the
    focus moves only after the key that moves it has been acted on; in
    between, the keys typed ahead reach the widget that is giving the focus
    up. ``hold`` keeps them when the widget asks for another to open;
    ``pass_to`` hands them, and every later one, to that widget once it is
    ready; ``resume`` gives the widget its keys back (the held ones first).
    """

    def __init__(self, owner: Widget) -> None:
        self.owner = owner
        self.held: list[events.Key] | None = None
        """Keys kept until it is known where they go; None when the owner takes its keys."""
        self.successor: Widget | None = None
        """The widget the keys go to, while the owner gives them on."""

    @property
    def diverting(self) -> bool:
        return self.held is not None or self.successor is not None

    def hold(self) -> None:
        self.held, self.successor = [], None

    def pass_to(self, widget: Widget) -> None:
        waiting, self.held = self.held or [], None
        self.successor = widget
        for key in waiting:
            widget._forward_event(key)

    def resume(self) -> None:
        waiting, self.held, self.successor = self.held or [], None, None
        for key in waiting:
            self.owner._forward_event(key)

    def divert(self, event: events.Key) -> bool:
        """Keep or pass on ``event`` when the owner is not taking its keys (call first in its key handler); True
        when it was, and it is stopped there."""
        if not self.diverting:
            return False
        copy = events.Key(event.key, event.character)  # the app marked the original as delivered
        if self.successor is not None:
            self.successor._forward_event(copy)
        else:
            self.held.append(copy)
        event.stop()
        event.prevent_default()
        return True
