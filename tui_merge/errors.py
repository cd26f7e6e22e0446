"""The project's one exception family: every error a user can see is one of these.

The message is a complete sentence written for the person at the terminal: it
names the file, key or tensor at fault and says what to do. The CLI prints it
and exits with ``exit_code``; the wizard shows it in a dialog; tests assert on it.
"""

from __future__ import annotations

import difflib
from typing import Any


class TuiMergeError(Exception):
    """An error with a message meant for the user, not a traceback."""

    exit_code: int = 1
    """Process exit status the CLI uses for this error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInputError(TuiMergeError):
    """The user's input (a path, a model folder, a config) cannot be used as given."""

    exit_code = 2


def suggestion(name: str, candidates: Any) -> str:
    """``; did you mean 'x'?`` for the closest candidate, or a list of the valid ones."""
    close = difflib.get_close_matches(name.replace("-", "_"), list(candidates), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; choose one of: {', '.join(sorted(candidates))}"
