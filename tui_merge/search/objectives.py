"""What a search scores each merge by: ``--objective [min:|max:]KIND[:ARGUMENT]``.

* ``perplexity`` or ``perplexity:FILE``: the merge's perplexity on the built-in sample or on FILE (``compare``'s
  computation); lower is better unless ``max:`` says otherwise.
* ``command:COMMAND``: a shell command run with the merged folder in ``$MERGED`` and the trial's recipe in
  ``$RECIPE``, in the folder the search was started from; its last line of output is the number (lm-eval, a
  script, anything a person already uses). Lower is better unless ``max:`` is written in front.

A command whose program is not found, or a text file that cannot be read, is refused before the first merge. A
command that fails or prints no number fails only its trial, with the command's last lines of errors said.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tui_merge.errors import BadInputError

Direction = Literal["minimize", "maximize"]


class TrialFailed(Exception):
    """A trial that cannot be scored; the search goes on with the next."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Objective:
    """One number each trial is scored by."""

    kind: Literal["perplexity", "command"]
    direction: Direction
    label: str
    """The column's name in the trials table."""
    argument: str | None = None
    """The text file or the command as written."""
    text: str | None = None
    """The text perplexity is computed on (read once, sent to each worker)."""
    workdir: str = "."
    """Where a command runs: the folder the search was started from."""


def parse_objective(written: str) -> Objective:
    """``[min:|max:]perplexity[:FILE]`` or ``[min:|max:]command:COMMAND``, checked before the first merge."""
    from tui_merge.evaluation.sample_text import scored_text

    rest, direction = written.strip(), None
    for word, meaning in (("min:", "minimize"), ("max:", "maximize")):
        if rest.startswith(word):
            rest, direction = rest[len(word) :], meaning
    kind, _, argument = rest.partition(":")
    if kind == "perplexity":
        text = scored_text(argument or None)
        label = f"perplexity ({Path(argument).name})" if argument else "perplexity"
        return Objective("perplexity", direction or "minimize", label, argument or None, text=text)
    if kind == "command":
        if not argument.strip():
            raise BadInputError(f"--objective {written}: write the command after 'command:'.")
        label = _check_command(written, argument)
        return Objective("command", direction or "minimize", label, argument, workdir=os.getcwd())
    raise BadInputError(
        f"--objective {written}: say perplexity, perplexity:FILE or command:'COMMAND' (min: or max: in front)."
    )


def _check_command(written: str, command: str) -> str:
    """Refuse a command whose program is not here; its short name for the table (the script it runs, else the
    program: ``python score.py`` is ``score.py``)."""
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise BadInputError(f"--objective {written}: the command cannot be read ({error}).") from None
    program = next((word for word in words if "=" not in word), None)  # skip VAR=value prefixes
    if program is None:
        raise BadInputError(f"--objective {written}: the command names no program.")
    builtin = program in {"echo", "printf", "test", "true", "false", "exit", "cd", ":", "[", "eval", "exec"}
    if not builtin and shutil.which(program) is None and not Path(program).expanduser().is_file():
        raise BadInputError(
            f"--objective {written}: {program} is not a program here (not on PATH nor a file); check the command."
        )
    scripts = [word for word in words if Path(word).suffix and Path(word).expanduser().is_file()]
    return Path(scripts[0] if scripts else program).name


def measure(objective: Objective, merged: Path, recipe: Path, device: str = "auto") -> float:
    """The objective's number for the merge in ``merged``; TrialFailed when there is none."""
    if objective.kind == "perplexity":
        from tui_merge.evaluation.scoring import score_models

        score = score_models([str(merged)], objective.text or "", [], device=device)[0]
        if score.perplexity is None:
            raise TrialFailed(f"the merge cannot be scored: {score.skipped}")
        return float(score.perplexity)
    environment = {**os.environ, "MERGED": str(merged.resolve()), "RECIPE": str(recipe.resolve())}
    done = subprocess.run(objective.argument or "", shell=True, env=environment, cwd=objective.workdir,
                          capture_output=True, text=True)  # fmt: skip
    errors = _tail(done.stderr)
    if done.returncode != 0:
        raise TrialFailed(f"objective command exited with status {done.returncode}" + (f": {errors}" if errors else ""))
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    try:
        value = float(lines[-1])
    except (IndexError, ValueError):
        shown = f" (it printed {lines[-1][:60]!r})" if lines else " (it printed nothing)"
        raise TrialFailed(f"objective command printed no number on its last line{shown}"
                          + (f": {errors}" if errors else "")) from None  # fmt: skip
    if not math.isfinite(value):
        raise TrialFailed(f"objective command printed {value}, which cannot be compared")
    return value


def _tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines()[-lines:] if line.strip()]
    return " / ".join(kept)[:400]
