"""The wizard's Search screen (Review, ctrl+f): trials live in a table, the best one opens at Review, escape stops."""

from __future__ import annotations

import sys
import textwrap

import yaml
from test_wizard_tui import SIZE, state_with, status_text, wait_until
from textual.widgets import DataTable, Input, Static

from tui_merge.tui.app import WizardApp
from tui_merge.tui.screens.review import ReviewScreen
from tui_merge.tui.screens.search import SearchScreen

SCORE = textwrap.dedent("""\
    import sys, time, pathlib, yaml
    t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
    if len(sys.argv) > 2:  # a slow objective: says it started, then takes its time
        pathlib.Path(sys.argv[2]).write_text("")
        time.sleep(20)
    print((t - 0.3) ** 2)
""")


def tool_status(app: WizardApp) -> str:
    return str(app.screen.query_one("#tool-status", Static).content)


async def open_search(app: WizardApp, pilot, objective: str, trials: str) -> SearchScreen:
    await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.pending() is None)
    await pilot.press("ctrl+f")
    await wait_until(pilot, lambda: isinstance(app.screen, SearchScreen))
    screen = app.screen
    assert screen.query_one("#space", Input).value == "t=0..1"  # slerp's per-layer parameter over its range
    screen.query_one("#objective", Input).value = objective
    screen.query_one("#trials", Input).value = trials
    await pilot.pause()
    return screen


async def test_a_search_shows_its_trials_and_enter_opens_the_best_at_review(workdir) -> None:
    (workdir / "score.py").write_text(SCORE)
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_search(app, pilot, f"command:{sys.executable} {workdir / 'score.py'} $RECIPE", "4")
        command = str(screen.query_one("#search-command", Static).content)
        assert "tui-merge search merge.yaml --space t=0..1 --objective 'command:" in command
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: tool_status(app).startswith("done: 4 trials"), seconds=120)
        table = screen.query_one(DataTable)
        assert table.row_count == 4
        values = {number: row.values["t"] for number, row in screen.rows.items()}
        best = min(values, key=lambda number: ((values[number] - 0.3) ** 2, number))  # computed here
        assert str(table.get_row_at(table.cursor_row)[0]) == f"★ {best}"  # the cursor waits on the best
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen))
        await wait_until(pilot, lambda: status_text(app).startswith(f"Opened trial {best}'s recipe"))
        assert app.state.output == "merged" and app.state.config_path == "merge.yaml"
        text = app.state.config_text()
        assert yaml.safe_load(text)["parameters"]["t"][-1]["value"][0] == values[best]
    assert (workdir / "merge.yaml").is_file() and (workdir / "merge.search.db").is_file()


async def test_escape_stops_a_search_and_the_trial_in_flight_waits_for_the_next(workdir) -> None:
    import optuna
    from optuna.trial import TrialState

    (workdir / "score.py").write_text(SCORE)
    started = workdir / "started"
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        objective = f"command:{sys.executable} {workdir / 'score.py'} $RECIPE {started}"
        screen = await open_search(app, pilot, objective, "3")
        await pilot.press("ctrl+r")
        await wait_until(pilot, started.exists, seconds=120)
        await pilot.press("escape")
        await wait_until(pilot, lambda: tool_status(app).startswith("stopped;"), seconds=120)
        assert not screen.running and isinstance(app.screen, SearchScreen)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ReviewScreen))
    storage = f"sqlite:///{workdir / 'merge.search.db'}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    states = [trial.state for trial in study.get_trials()]
    assert TrialState.RUNNING not in states and states.count(TrialState.WAITING) == 1  # asked first next time


async def test_a_space_the_method_lacks_is_said_on_the_search_screen(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_search(app, pilot, "perplexity", "2")
        screen.query_one("#space", Input).value = "lambda=0..1"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: "slerp has no parameter lambda" in tool_status(app))
        assert not screen.running and screen.query_one(DataTable).row_count == 0
