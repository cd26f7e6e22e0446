"""The wizard saves its merge as a stage of a multi-stage recipe (Review, ctrl+g), and the recipe runs."""

from __future__ import annotations

from test_wizard_tui import SIZE, state_with, status_text, wait_until
from textual.widgets import Input, Static

from tui_merge.cli import main
from tui_merge.tools.stages import read_stages
from tui_merge.tui.app import WizardApp
from tui_merge.tui.modals import ConfirmScreen
from tui_merge.tui.stage_dialog import StageDialog


def with_name(config: str, name: str) -> str:
    """The stage the wizard should write: ``name:`` after the config's leading comment lines."""
    lines = config.splitlines(keepends=True)
    top = next(index for index, line in enumerate(lines) if not line.startswith("#"))
    return "".join(lines[:top]) + f"name: {name}\n" + "".join(lines[top:])


async def test_review_saves_the_merge_as_a_stage_replaces_it_when_asked_and_the_recipe_runs(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.pending() is None)
        config = app.state.config_text()

        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, StageDialog))
        assert app.screen.query_one("#stage-name", Input).value == "merged"  # the output folder's name
        assert app.screen.query_one("#recipe", Input).value == "stages.yaml"
        await pilot.press(*"bad/name", "enter")
        await pilot.pause()
        assert isinstance(app.screen, StageDialog)
        assert "must be one word" in str(app.screen.query_one("#stage-problem", Static).content)
        app.screen.query_one("#stage-name", Input).value = ""
        await pilot.press(*"first", "enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, StageDialog))
        assert status_text(app).startswith("Saved stage first into stages.yaml")
        assert (workdir / "stages.yaml").read_text() == with_name(config, "first")

        app.state.out_dtype = "float32"  # a changed merge, saved again under the same name
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, StageDialog))
        app.screen.query_one("#stage-name", Input).value = "first"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "stages.yaml has a stage first already" in app.screen.question
        await pilot.press("y")
        await wait_until(pilot, lambda: status_text(app).startswith("Saved stage first"))
    written = (workdir / "stages.yaml").read_text()
    assert written == with_name(app.state.config_text(), "first") and written != with_name(config, "first")

    # A final stage written by hand uses the saved stage by its name; the recipe runs it first.
    final = "merge_method: linear\nmodels:\n  - model: first\n    parameters: {weight: 0.5}\n" \
            "  - model: chat\n    parameters: {weight: 0.5}\n"  # fmt: skip
    (workdir / "stages.yaml").write_text(written + "---\n" + final)
    assert [stage.name for stage in read_stages((workdir / "stages.yaml").read_text(), "stages.yaml")] == [
        "first",
        None,
    ]
    assert main(["run", "stages.yaml", "out"]) == 0
    assert (workdir / "out.stages" / "first" / "model.safetensors").is_file()
    assert (workdir / "out" / "model.safetensors").is_file()


async def test_a_stage_added_to_another_recipe_keeps_its_stages(workdir) -> None:
    assert main(["template", "base", "chat", "-o", "multi.yaml", "--stage", "earlier"]) == 0
    before = (workdir / "multi.yaml").read_text()
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5)
    app.stage_recipe = "multi.yaml"
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.pending() is None)
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, StageDialog))
        assert app.screen.query_one("#recipe", Input).value == "multi.yaml"
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, StageDialog))
        config = app.state.config_text()
    assert (workdir / "multi.yaml").read_text() == before + "---\n" + with_name(config, "merged")
    assert [stage.name for stage in read_stages((workdir / "multi.yaml").read_text(), "multi.yaml")] == [
        "earlier",
        "merged",
    ]
