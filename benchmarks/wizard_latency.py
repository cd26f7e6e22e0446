"""How soon the wizard answers on small models: its first screen, a model's facts, the Analysis step.

Run from the repository root (not part of the test suite):

    .venv/bin/python benchmarks/wizard_latency.py

It builds the demo models in a temporary folder, then drives the wizard with
Textual's Pilot in a fresh process, as a person would type: the first
screen is timed from the start of that process (imports included), a model
from the enter that adds it until its row is drawn in the table, Analysis from
ctrl+n until the report is shown.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

TARGETS = {"first screen": 1.0, "a model's facts": 0.3, "Analysis": 1.0}


async def until(pilot, condition, limit: float = 30.0) -> None:
    end = time.perf_counter() + limit
    while not condition() and time.perf_counter() < end:
        await pilot.pause(0.005)


def shown_rows(app) -> int:
    """Rows of the Models step's table as drawn on the screen (its model column filled in)."""
    from textual.widgets import DataTable

    tables = list(app.screen.query(DataTable))
    return max((table.row_count for table in tables), default=0)


async def measure() -> dict[str, float]:
    from tui_merge.tui.app import WizardApp
    from tui_merge.tui.screens.analysis import AnalysisScreen
    from tui_merge.wizard.state import WizardState

    results = {}
    app = WizardApp(WizardState())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        results["first screen"] = time.perf_counter() - STARTED
        added = []
        for count, name in enumerate(("demo-base", "demo-chat"), 1):
            await pilot.press(*name)
            start = time.perf_counter()
            await pilot.press("enter")
            await until(pilot, lambda count=count: shown_rows(app) >= count)
            await pilot.pause()  # and the frame that draws it: the row on the screen, not only in the state
            added.append(time.perf_counter() - start)
        results["a model's facts"] = max(added)
        start = time.perf_counter()
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, AnalysisScreen) and app.screen.report is not None)
        results["Analysis"] = time.perf_counter() - start
    return results


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":  # the fresh process
        os.chdir(sys.argv[2])
        print(json.dumps(asyncio.run(measure())))
        return 0
    from tui_merge.samples import build_demo_models

    with tempfile.TemporaryDirectory() as folder:
        build_demo_models(Path(folder))
        done = subprocess.run([sys.executable, __file__, "--measure", folder], capture_output=True, text=True,
                              check=True)  # fmt: skip
        results = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{'wizard':<18} {'seconds':>8} {'target s':>9}")
    for name, seconds in results.items():
        mark = "" if seconds <= TARGETS[name] else "  over"
        print(f"{name:<18} {seconds:>8.2f} {TARGETS[name]:>9.1f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
