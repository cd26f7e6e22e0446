"""The Textual wizard: one screen per step, state on the App, the same engine as ``tui-merge run``."""
