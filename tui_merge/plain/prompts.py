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
On a terminal, lines and questions wrap at words to its width (a terminal cuts
mid-word); piped into a file they stay whole. Answering ``back`` (or ``<``)
returns to the previous step (``GoBack``). Ctrl-C anywhere stops the wizard
(exit 130); input that ends early is bad input (exit 2); nothing is written
before the review step.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from tui_merge.errors import BadInputError

Validator = Callable[[str], str | None]
"""Returns what is wrong with an answer, or None when it is fine."""

_STYLES = {"error": "RED", "warning": "YELLOW", "info": "CYAN", "heading": "BRIGHT"}

BACK_ANSWERS = ("back", "<")
"""Answers that return to the previous step instead of answering (a folder called back is typed ./back)."""

LONG_LIST = 10
"""A numbered list longer than this shows each choice on one line, so the list and its question fit 24 rows."""


class GoBack(Exception):
    """The person asked to return to the previous step."""


def dumb_terminal() -> bool:
    """True when the terminal cannot move its cursor: ``TERM`` is dumb, unknown or (off Windows) unset."""
    term = os.environ.get("TERM", "")
    return term in ("dumb", "unknown") or (not term and os.name != "nt")


def use_colour() -> bool:
    """Colour only for a person at a capable terminal who has not asked for none."""
    return sys.stdout.isatty() and not dumb_terminal() and "NO_COLOR" not in os.environ


class Prompter(Protocol):
    """What the plain wizard asks through."""

    questions: int
    """How many questions were asked so far (a step that asked none is skipped when going back)."""

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

    def __init__(self, colour: bool | None = None, stream: TextIO | None = None, width: int | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = (use_colour() and self.stream.isatty()) if colour is None else colour
        if self.colour:
            import colorama

            colorama.just_fix_windows_console()
        self.width = width
        """Columns to wrap at; None: the terminal's when the stream is one, else no wrapping."""
        self.questions = 0

    def columns(self) -> int | None:
        """Where lines wrap: ``width``, else the terminal's width, else nowhere (a file or a pipe)."""
        if self.width is not None:
            return self.width
        return shutil.get_terminal_size().columns if self.stream.isatty() else None

    def wrapped(self, text: str) -> list[str]:
        """``text`` cut at words to ``columns()``; continuation lines indented past its own indent."""
        columns = self.columns()
        if columns is None or len(text) <= columns:
            return [text]
        indent = " " * (len(text) - len(text.lstrip()) + 2)
        return textwrap.wrap(text, columns, subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False) or [text]  # fmt: skip

    def say(self, text: str = "", style: str | None = None) -> None:
        for line in self.wrapped(text):
            self._print(line, style)

    def _print(self, text: str, style: str | None) -> None:
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
        self.questions += 1
        suffix = f" [{default}]" if default else ""
        *lines, last = self.wrapped(f"{message}{suffix}:")
        while True:
            for line in lines:
                self._print(line, None)
            answer = self._read(f"{last} ").strip() or default
            if answer.lower() in BACK_ANSWERS:
                raise GoBack
            problem = validate(answer) if validate else None
            if problem is None:
                return answer
            self.say(problem, "error")

    def select(self, message: str, choices: Sequence[tuple[str, Any]], default: Any = None) -> Any:
        self.say(message)
        values = [value for _, value in choices]
        columns = self.columns()
        for number, (title, _) in enumerate(choices, 1):
            line = f"  {number}) {title}"
            if columns is not None and len(choices) > LONG_LIST and len(line) > columns:
                line = line[: columns - 1].rstrip() + "…"  # one line each: the list fits the screen
            self.say(line)
        default_number = str(values.index(default) + 1) if default in values else ""

        def valid(answer: str) -> str | None:
            if answer.isdigit() and 1 <= int(answer) <= len(choices):
                return None
            return f"Type a number from 1 to {len(choices)}."

        answer = self.text(f"Number (1-{len(choices)})", default_number, valid)
        self.questions -= 1  # the number was this one question
        return values[int(answer) - 1]

    def confirm(self, message: str, default: bool = True) -> bool:
        def valid(answer: str) -> str | None:
            return None if answer.lower() in ("y", "yes", "n", "no") else "Answer y or n."

        return self.text(f"{message} (y/n)", "y" if default else "n", valid).lower() in ("y", "yes")


_BACK = object()
"""The value of questionary's back choice."""


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

        self.questions += 1

        def check(answer: str) -> bool | str:
            if answer.strip().lower() in BACK_ANSWERS:
                return True
            problem = validate(answer.strip()) if validate else None
            return True if problem is None else problem

        answer = questionary.text(message, default=default, validate=check, **self.options).unsafe_ask().strip()
        if answer.lower() in BACK_ANSWERS:
            raise GoBack
        return answer

    def select(self, message: str, choices: Sequence[tuple[str, Any]], default: Any = None) -> Any:
        import questionary

        self.questions += 1
        options = [questionary.Choice(title, value=value) for title, value in choices]
        chosen = next((option for option in options if option.value == default), None)
        options.append(questionary.Choice("← back to the previous step", value=_BACK))
        answer = questionary.select(message, choices=options, default=chosen, **self.options).unsafe_ask()
        if answer is _BACK:
            raise GoBack
        return answer

    def confirm(self, message: str, default: bool = True) -> bool:
        import questionary

        self.questions += 1
        return bool(questionary.confirm(message, default=default, **self.options).unsafe_ask())


def default_prompter(stream: TextIO | None = None) -> Prompter:
    """questionary on a capable terminal, numbered lines otherwise; questions and notes go to ``stream``."""
    stream = stream or sys.stdout
    if sys.stdin.isatty() and stream.isatty() and not dumb_terminal():
        return QuestionaryPrompter(stream=stream)
    return LinePrompter(stream=stream)
