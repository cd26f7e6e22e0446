"""``tui-merge plain``: the wizard as prompts; ``tui-merge`` falls back to it on a dumb terminal."""

from __future__ import annotations

import argparse

from tui_merge.cli.wizard_cmd import wizard_state


def run(args: argparse.Namespace) -> int:
    """Ask every step with the prompter the terminal allows, then merge."""
    from tui_merge.plain.flow import run_plain
    from tui_merge.plain.prompts import default_prompter

    state = wizard_state(getattr(args, "models", []) or [], getattr(args, "config", None))
    return run_plain(state, default_prompter())
