"""``tui-merge wizard`` (and plain ``tui-merge``): open the full-screen wizard."""

from __future__ import annotations

import argparse
import sys

from tui_merge.errors import BadInputError
from tui_merge.wizard.reopening import load_state
from tui_merge.wizard.state import WizardState


def has_terminal() -> bool:
    """True when a full-screen app can draw: stdin and stdout are terminals."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def wizard_state(models: list[str], config: str | None) -> WizardState:
    """The starting state: models preloaded, or a saved config reopened."""
    from tui_merge.models.info import load_model_info

    if config:
        return load_state(config)
    infos = {name: load_model_info(name) for name in models}
    return WizardState(models=list(models), infos=infos)


def open_wizard(state: WizardState, hint: str | None = None, start_step: int = 0) -> int:
    """Run the app on ``state``; needs a terminal. When the terminal hangs up during a merge, the merge goes on
    without it (``tui.hangup``) and its exit status is the wizard's."""
    if not has_terminal():
        raise BadInputError(
            "The wizard needs a terminal; without one use tui-merge template and tui-merge run (see tui-merge --help)."
        )
    from tui_merge.tui.app import WizardApp
    from tui_merge.tui.hangup import continue_headless

    app = WizardApp(state, hint=hint, start_step=start_step)
    try:
        app.run()
    except Exception:
        if app.handover is None:
            raise  # drawing on a terminal that is gone may fail: the merge still goes on below
    if app.handover is not None:
        return continue_headless(app.handover)
    return app.return_code or 0


def run(args: argparse.Namespace) -> int:
    """Open the wizard on the given models or config."""
    return open_wizard(wizard_state(getattr(args, "models", []) or [], getattr(args, "config", None)))
