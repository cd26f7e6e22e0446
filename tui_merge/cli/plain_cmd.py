"""``tui-merge plain``: the wizard as prompts; ``tui-merge`` falls back to it on a dumb terminal."""

from __future__ import annotations

import argparse
import sys

from tui_merge.cli.wizard_cmd import wizard_state


def run(args: argparse.Namespace) -> int:
    """Ask every step with the prompter the terminal allows, then merge."""
    from tui_merge.plain.flow import run_plain
    from tui_merge.plain.prompts import default_prompter

    print_yaml = getattr(args, "print_yaml", False)
    state = wizard_state(getattr(args, "models", []) or [], getattr(args, "config", None))
    # With --print-yaml stdout carries the config alone, so the questions go to stderr.
    try:
        return run_plain(state, default_prompter(sys.stderr if print_yaml else None), print_yaml=print_yaml)
    except KeyboardInterrupt:
        saved = f" (the config is saved as {state.config_path})" if state.config_read else ""
        print(f"tui-merge: plain wizard stopped; answers not yet reviewed are lost{saved}.", file=sys.stderr)
        return 130
