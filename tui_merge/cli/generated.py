"""Commands that build a config from their own flags (``blockmerge``, ``circuit``): print it, or merge with it.

The config is the whole truth of such a run: ``--print-yaml`` prints it, and
the merge writes it next to the output as ``tui_merge_config.yaml`` like
every run, so a one-off command line becomes a recipe that ``tui-merge run``
replays byte for byte. The config is validated before anything else
happens, also when it is only printed.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from tui_merge.config.loading import parse_config
from tui_merge.errors import BadInputError


def run_generated(
    text: str,
    source: str,
    output: str | None,
    *,
    print_yaml: bool,
    force: bool,
    resume: bool,
    argv: list[str],
    allow_crimes: bool = False,
) -> int:
    """Print ``text`` (``--print-yaml``) or merge it into ``output``; ``argv`` is the command line, for resuming."""
    loaded = parse_config(text, source)
    if print_yaml:
        print(text.rstrip("\n"))
        return 0
    if not output:
        raise BadInputError("No output folder given; name one, or pass --print-yaml to see the config only.")
    from tui_merge.engine.job import MergeJob
    from tui_merge.headless import run_in_console

    rerun = shlex.join(["tui-merge", *[arg for arg in argv if arg != "--resume"]])
    job = MergeJob(dataclasses.replace(loaded, rerun=rerun), Path(output), replace=force, resume=resume,
                   keep_partial=True, allow_crimes=allow_crimes)  # fmt: skip
    return run_in_console(job)
