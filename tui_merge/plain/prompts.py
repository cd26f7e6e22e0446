"""Questions asked one at a time: with questionary on a capable terminal, as numbered lines everywhere else.

The plain wizard asks through a ``Prompter`` and never knows which one:

- ``QuestionaryPrompter``: questionary's prompts (arrow keys in a list,
  defaults filled in), drawn inline without taking over the screen.
- ``LinePrompter``: one printed line per question and choices as a numbered
  list, answered by typing and Enter. Nothing moves the cursor, so it works
  on ``TERM=dumb``, through a screen reader, in an Emacs shell buffer and
  with answers piped on stdin.

Colour goes through colorama (Windows consoles get ANSI translated) and is
left out when stdout is not a terminal, ``TERM`` is dumb or ``NO_COLOR`` is set.
Ctrl-C anywhere stops the wizard (exit 130); input that ends early is bad
input (exit 2); nothing is written before the review step.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from tui_merge.errors import BadInputError

Validator = Callable[[str], str | None]
"""Returns what is wrong with an answer, or None when it is fine."""

_STYLES = {"error": "RED", "warning": "YELLOW", "info": "CYAN", "heading": "BRIGHT"}


def dumb_terminal() -> bool:
    """True when the terminal cannot move its cursor: ``TERM`` is dumb, unknown or (off Windows) unset."""
    term = os.environ.get("TERM", "")
    return term in ("dumb", "unknown") or (not term and os.name != "nt")


def use_colour() -> bool:
    """Colour only for a person at a capable terminal who has not asked for none."""
    return sys.stdout.isatty() and not dumb_terminal() and "NO_COLOR" not in os.environ


class Prompter(Protocol):
    """What the plain wizard asks through."""

    def say(self, text: str = "", style: str | None = None) -> None:
        """Print a line (``style``: error, warning, info or heading)."""

    def text(self, message: str, default: str = "", validate: Validator | None = None) -> str:
        """A free-form answer, asked again until ``validate`` accepts it."""

    def select(self, message: str, choices: Sequence[tuple[str, Any]], default: Any = None) -> Any:
        """One of ``(title, value)`` choices; returns the value."""

    def confirm(self, message: str, default: bool = True) -> bool:
        """Yes or no."""


class _Printer:
    """Lines on ``stream`` (stdout, or stderr when stdout carries a config), coloured through colorama when wanted."""

    def __init__(self, colour: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = (use_colour() and self.stream.isatty()) if colour is None else colour
        if self.colour:
            import colorama

            colorama.just_fix_windows_console()

    def say(self, text: str = "", style: str | None = None) -> None:
        if self.colour and style in _STYLES:
            import colorama

            code = getattr(colorama.Style if style == "heading" else colorama.Fore, _STYLES[style])
            text = f"{code}{text}{colorama.Style.RESET_ALL}"
        print(text, file=self.stream, flush=True)


class LinePrompter(_Printer):
    """Numbered lists and typed answers, read with ``input()``."""

    def _read(self, prompt: str) -> str:
        try:
            if self.stream is sys.stdout:
                answer = input(prompt)
            else:
                self.stream.write(prompt)
                self.stream.flush()
                answer = input()
            if not sys.stdin.isatty():
                # Piped answers are not echoed by a terminal: write each one and end its line, so the
                # transcript reads "Number (1-19) [1]: 2" and the next question starts a line of its own.
                print(answer, file=self.stream, flush=True)
            return answer
        except (EOFError, KeyboardInterrupt) as stop:
            # The prompt has no line end: what is printed next (the error, the shell's prompt) starts its own line.
            print(file=self.stream, flush=True)
            if isinstance(stop, KeyboardInterrupt):
                raise
            raise BadInputError("Input ended before the plain wizard finished; nothing was written.") from None

    def text(self, message: str, default: str = "", validate: Validator | None = None) -> str:
        suffix = f" [{default}]" if default else ""
        while True:
            answer = self._read(f"{message}{suffix}: ").strip() or default
            problem = validate(answer) if validate else None
            if problem is None:
                return answer
            self.say(problem, "error")

    def select(self, message: str, choices: Sequence[tuple[str, Any]], default: Any = None) -> Any:
        self.say(message)
        values = [value for _, value in choices]
        for number, (title, _) in enumerate(choices, 1):
            self.say(f"  {number}) {title}")
        default_number = str(values.index(default) + 1) if default in values else ""

        def valid(answer: str) -> str | None:
            if answer.isdigit() and 1 <= int(answer) <= len(choices):
                return None
            return f"Type a number from 1 to {len(choices)}."

        answer = self.text(f"Number (1-{len(choices)})", default_number, valid)
        return values[int(answer) - 1]

    def confirm(self, message: str, default: bool = True) -> bool:
        def valid(answer: str) -> str | None:
            return None if answer.lower() in ("y", "yes", "n", "no") else "Answer y or n."

        return self.text(f"{message} (y/n)", "y" if default else "n", valid).lower() in ("y", "yes")


class QuestionaryPrompter(_Printer):
    """questionary's prompts; ``prompt_options`` (input, output) let tests drive them."""

    def __init__(self, colour: bool | None = None, stream: TextIO | None = None, **prompt_options: Any) -> None:
        super().__init__(colour, stream)
        if self.stream is not sys.stdout and "output" not in prompt_options:
            from prompt_toolkit.output import create_output

            prompt_options["output"] = create_output(stdout=self.stream)
        self.options = prompt_options

    def text(self, message: str, default: str = "", validate: Validator | None = None) -> str:
        import questionary

        def check(answer: str) -> bool | str:
            problem = validate(answer.strip()) if validate else None
            return True if problem is None else problem

        answer = questionary.text(message, default=default, validate=check, **self.options).unsafe_ask()
        return answer.strip()

    def select(self, message: str, choices: Sequence[tuple[str, Any]], default: Any = None) -> Any:
        import questionary

        options = [questionary.Choice(title, value=value) for title, value in choices]
        chosen = next((option for option in options if option.value == default), None)
        return questionary.select(message, choices=options, default=chosen, **self.options).unsafe_ask()

    def confirm(self, message: str, default: bool = True) -> bool:
        import questionary

        return bool(questionary.confirm(message, default=default, **self.options).unsafe_ask())


def default_prompter(stream: TextIO | None = None) -> Prompter:
    """questionary on a capable terminal, numbered lines otherwise; questions and notes go to ``stream``."""
    stream = stream or sys.stdout
    if sys.stdin.isatty() and stream.isatty() and not dumb_terminal():
        return QuestionaryPrompter(stream=stream)
    return LinePrompter(stream=stream)
