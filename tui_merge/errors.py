"""The project's one exception family: every error a user can see is one of these.

The message is a complete sentence written for the person at the terminal: it
names the file, key or tensor at fault and says what to do. The CLI prints it
and exits with ``exit_code``; the wizard shows it in a dialog; tests assert on it.
"""

from __future__ import annotations


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
