"""The wizard at 80x24 without rough edges: help, status lines, footers, quitting, pausing a merge."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_wizard_tui import SIZE, state_with, status_text, wait_until
from textual.containers import VerticalScroll
from textual.widgets import RichLog, Static
from textual.widgets._footer import FooterKey

from tui_merge.engine.control import MergeControl
from tui_merge.tui.app import WizardApp, step_screens
from tui_merge.tui.bars import bar
from tui_merge.tui.layer_table import LayerTable
from tui_merge.tui.modals import ConfirmScreen, ErrorScreen, HelpScreen
from tui_merge.tui.step import StepScreen


@pytest.mark.parametrize("step", range(7))
async def test_help_flows_as_paragraphs_scrolls_to_its_end_and_lists_every_key(workdir, step) -> None:
    screen_class = step_screens()[step]
    assert all("\n" not in paragraph for paragraph in screen_class.HELP.split("\n\n")), "hard-wrapped help"
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=step)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        while not isinstance(app.screen, StepScreen):  # the run step may show a dialog when it ends
            await pilot.press("escape")
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        scroll = app.screen.query_one("#help-scroll", VerticalScroll)
        assert app.screen.query_one(".dialog").region.bottom <= SIZE[1]
        for _ in range(20):
            await pilot.press("pagedown")
        assert scroll.scroll_y == scroll.max_scroll_y
        keys = dict(app.screen.keys)
        assert keys["f1"].startswith("this help") and keys["^q"].startswith("quit")
        if step == 3:
            assert "m" in keys and "^r" in keys and "]" in keys and "c" in keys and "v" in keys


async def test_a_long_status_wraps_instead_of_being_cut(workdir) -> None:
    app = WizardApp(state_with("base", "chat"), start_step=0)
    async with app.run_test(size=SIZE) as pilot:
        message = "word " * 40 + "THE-END"
        app.screen.status(message)
        status = app.screen.query_one("#status", Static)
        await wait_until(pilot, lambda: status.region.height >= 3)  # once the layout catches up
        assert status.region.bottom <= SIZE[1] - 1  # above the footer


async def test_the_layers_footer_fits_80_columns_and_shows_the_step_keys(workdir) -> None:
    """The editing keys are said in the line under the table (``test_the_layers_step_says_every_editing_key...``)."""
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        expected = ("s", "esc", "^n", "f1", "^q")
        # The footer composes a frame or more after the screen mounts on a busy machine.
        await wait_until(pilot, lambda: {key.key_display for key in app.screen.query(FooterKey)} >= set(expected))
        shown = {key.key_display: key for key in app.screen.query(FooterKey)}
        for key in expected:
            assert key in shown, f"{key} is not in the footer"
            assert shown[key].region.right <= SIZE[0], f"{key} is cut off"


async def test_after_the_merge_the_run_step_shows_the_replay_whole_and_offers_no_cancel(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: "tui-merge run merge.yaml merged" in status_text(app))
        status = app.screen.query_one("#status", Static)
        # The status grows to the lines its text needs once the layout catches up (a busy machine is slower).
        await wait_until(pilot, lambda: status.region.height * (status.region.width - 2) >= len(status_text(app)))
        log = "\n".join(str(line.text) for line in app.screen.query_one("#log", RichLog).lines)
        assert "replay: tui-merge run merge.yaml merged" in log
        # The footer recomposes after the bindings refresh, a frame or more later on a busy machine.
        await wait_until(pilot, lambda: "back" in {key.action for key in app.screen.query(FooterKey)})
        actions = {key.action for key in app.screen.query(FooterKey)}
        assert "cancel" not in actions and "back" in actions
        assert "next" not in actions  # the last step offers no next step


async def test_ctrl_q_quits_from_a_confirmation_dialog(workdir) -> None:
    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running


def hold_the_merge(monkeypatch, until) -> None:
    """The Run step's merge starts only once ``until(control)`` holds, then runs for real."""
    from tui_merge.engine import executor

    real_execute = executor.execute

    def held(*args, control: MergeControl, **kwargs):
        for _ in range(400):
            if until(control):
                break
            threading.Event().wait(0.025)
        return real_execute(*args, control=control, **kwargs)

    monkeypatch.setattr(executor, "execute", held)


def finish_regardless(monkeypatch, after) -> None:
    """The merge waits until ``after(control)``, then finishes without looking at its control again: what a
    pause or stop does when it comes past the last checkpoint."""
    from tui_merge.engine import executor

    real_execute = executor.execute

    def finishing(*args, control: MergeControl, **kwargs):
        while not after(control):
            threading.Event().wait(0.025)
        return real_execute(*args, **kwargs)

    monkeypatch.setattr(executor, "execute", finishing)


def record_exits(monkeypatch) -> list[dict]:
    """The keyword arguments of each ``WizardApp.exit`` call (its return code and the message for the shell)."""
    exits = []
    real_exit = WizardApp.exit

    def recorded_exit(self, *args, **kwargs):
        exits.append(kwargs)
        return real_exit(self, *args, **kwargs)

    monkeypatch.setattr(WizardApp, "exit", recorded_exit)
    return exits


async def test_escape_pauses_the_merge_and_no_lets_it_finish(workdir, monkeypatch) -> None:
    hold_the_merge(monkeypatch, until=lambda control: control.paused)
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        control = app.open_steps[-1].control
        assert control.paused
        await pilot.press("n")
        assert not control.paused
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "verified" in status_text(app)
    assert (workdir / "merged" / "config.json").exists()


async def test_ctrl_q_while_merging_asks_once_then_stops_cleanly_and_quits(workdir, monkeypatch) -> None:
    hold_the_merge(monkeypatch, until=lambda control: control.paused)
    exits = record_exits(monkeypatch)
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmScreen) and "quit" in app.screen.question
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running)
    assert not (workdir / "merged").exists() and not (workdir / "merged.partial").exists()
    assert app.return_code == 130  # the shell learns that the merge did not happen
    said = str(exits[-1].get("message"))
    assert "merge cancelled; nothing was written at merged" in said and "saved as merge.yaml" in said


async def test_a_cancelled_merge_leaves_no_bar_nor_merging_title_behind(workdir, monkeypatch) -> None:
    from textual.widgets import ProgressBar

    hold_the_merge(monkeypatch, until=lambda control: control.paused)
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: app.screen.finished)
        title = str(app.screen.query_one("#run-title", Static).render())
        assert title.startswith("Merge cancelled; nothing was written at merged") and "Merging" not in title
        assert not app.screen.query_one("#progress", ProgressBar).display
        log = "\n".join(str(line.text) for line in app.screen.query_one("#log", RichLog).lines)
        assert "cancelled: Merge cancelled" in log
    assert not (workdir / "merged").exists()


async def test_a_merge_that_finishes_while_the_cancel_question_is_open_says_so(workdir, monkeypatch) -> None:
    finish_regardless(monkeypatch, after=lambda control: control.paused)  # a pause too late
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen))
        assert "finished before it could be cancelled" in app.screen.message
    assert (workdir / "merged" / "config.json").exists()


async def test_a_merge_that_finishes_after_quit_was_answered_quits_saying_it_is_complete(workdir, monkeypatch) -> None:
    """Yes to "cancel and quit" came after the merge's last checkpoint: the output is complete, so the shell
    hears that (exit status 0), not that nothing was written."""
    finish_regardless(monkeypatch, after=lambda control: control.stopped)  # a stop too late
    exits = record_exits(monkeypatch)
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
        await pilot.press("ctrl+q")  # the second ctrl+q is the answer
        await wait_until(pilot, lambda: not app.is_running)
    assert app.return_code == 0
    said = str(exits[-1].get("message"))
    assert "the merge finished before it could be cancelled; it is in merged" in said, said
    assert (workdir / "merged" / "config.json").exists()


async def test_ctrl_q_pressed_again_while_the_merge_stops_quits_once_it_has_stopped(workdir, monkeypatch) -> None:
    """Each quit request used to wait on the merge's worker; a second one cancelled the first, and asyncio
    carried the cancellation into the awaited merge worker, so the app died with exit status 1. A ctrl+q
    after the answer also asked again."""
    released = threading.Event()
    hold_the_merge(monkeypatch, until=lambda control: released.is_set())
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        control = app.open_steps[-1].control
        try:
            await pilot.press("ctrl+q")
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("ctrl+q")  # the answer: cancel and quit
            await pilot.pause()
            await pilot.press("ctrl+q")  # and again, while the merge is stopping
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("ctrl+q")
            await pilot.pause()
        finally:
            released.set()
            control.stop()  # a merge left paused would hold the test's end
        await wait_until(pilot, lambda: not app.is_running)
    assert app.return_code == 130
    assert not (workdir / "merged").exists() and not (workdir / "merged.partial").exists()


async def test_the_folder_browser_moves_up_home_and_to_a_typed_path(workdir) -> None:
    from tui_merge.tui.modals import FolderPicker

    (workdir / "models").mkdir()
    (workdir / "chat").rename(workdir / "models" / "chat")
    app = WizardApp(state_with("base", "models/chat"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+o")
        picker = app.screen
        assert isinstance(picker, FolderPicker)
        assert picker.folder == workdir / "models"  # where the last model came from
        await pilot.press("backspace")
        assert picker.folder == workdir
        await pilot.press("tilde")
        assert picker.folder == Path.home()
        await pilot.press("slash", *str(workdir / "models").lstrip("/"), "enter")
        assert picker.folder == workdir / "models"
        await pilot.press("left")  # at the top of the tree: the parent folder
        assert picker.folder == workdir
        tree = picker.query_one("DirectoryTree")
        await wait_until(pilot, lambda: "other" in [node.data.path.name for node in tree.root.children])
        names = [node.data.path.name for node in tree.root.children]
        await pilot.press(*["down"] * (names.index("other") + 1), "p")
        await wait_until(pilot, lambda: len(app.state.models) == 3)
        assert app.state.models[-1] == str(workdir / "other")


REVIEW_IN_A_FRESH_PROCESS = """
import asyncio
from tui_merge.models.info import load_model_info
from tui_merge.tui.app import WizardApp
from tui_merge.wizard.state import WizardState
from tui_merge.wizard.reopening import load_state

async def main():
    state = WizardState(models=["base", "chat"], infos={name: load_model_info(name) for name in ("base", "chat")},
                        method_name="slerp", output="merged")
    app = WizardApp(state, start_step=5)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        print(app.screen.query_one("#plan").content)

asyncio.run(main())
"""


def test_steps_opened_together_load_tokenizers_in_turn(workdir) -> None:
    """Opening on Review starts the analysis and the plan at once, each loading tokenizers with transformers."""
    import subprocess
    import sys

    script = [sys.executable, "-c", REVIEW_IN_A_FRESH_PROCESS]
    done = subprocess.run(script, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Plan: slerp of 2 models"), done.stdout


async def test_the_focused_output_field_is_marked_and_review_shows_what_the_run_will_use(workdir) -> None:
    from textual.widgets import Label

    (workdir / "taken").mkdir()
    (workdir / "taken" / "tui_merge_config.yaml").write_text("an earlier merge's recipe")
    (workdir / "notes").mkdir()
    (workdir / "notes" / "todo.txt").write_text("someone's own file")
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        marked = [str(label.content) for label in app.screen.query(Label) if label.has_class("focused")]
        assert marked == ["▸ output folder"]
        await pilot.press("tab")
        marked = [str(label.content) for label in app.screen.query(Label) if label.has_class("focused")]
        assert marked == ["▸ output dtype"]
        await pilot.press("shift+tab", *"first", "ctrl+n")
        await app.workers.wait_for_complete()
        await pilot.press("escape")
        await pilot.press("ctrl+u", *"notes", "ctrl+n")
        assert not isinstance(app.screen, ConfirmScreen)  # never offered: only an earlier merge is replaced
        assert "Output notes holds files that no tui-merge run wrote (todo.txt)" in status_text(app)
        await pilot.press("ctrl+u", *"taken", "ctrl+n")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = str(app.screen.query_one("#destination", Static).content)
        assert shown == "output taken (exists; replaced once the merge has succeeded)   config merge.yaml"
        assert app.state.output == "taken"


async def test_layer_values_survive_adding_and_removing_a_model_and_a_method_round_trip(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="linear"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down", "plus", "plus")  # layer 0 (under the embeddings), base's weight: 0.60
        assert app.state.grid.per_layer("base").layers[0] == 0.6
        await pilot.press("escape", "escape", "escape")  # back to Models
        app.screen.query_one("#path").focus()
        await pilot.press(*"other", "enter")
        await wait_until(pilot, lambda: len(app.state.models) == 3)
        await pilot.press("ctrl+n")
        await app.workers.wait_for_complete()
        app.jump_to(3)
        await pilot.pause()
        assert app.state.grid.per_layer("base").layers[0] == 0.6
        assert "other starts at 0.33" in status_text(app)
        app.jump_to(0)
        await pilot.pause()
        app.screen.query_one("#models").focus()
        await pilot.press("down", "down", "delete")
        assert app.state.models == ["base", "chat"]
        app.jump_to(2)
        await pilot.pause()
        await pilot.press("down")  # slerp: a t column instead of weights
        await pilot.press("up")  # linear again
        app.jump_to(3)
        await pilot.pause()
        grid = app.state.grid
        depth = app.state.infos["base"].depth
        assert grid.per_layer("base").layers == [0.6] + [0.5] * (depth - 1)
        assert grid.per_layer("chat").layers == [0.5] * depth
        assert "Kept" not in status_text(app)


async def test_a_second_merge_asks_before_replacing_the_saved_config(workdir) -> None:
    from tui_merge.tui.modals import ChoiceScreen

    (workdir / "merge.yaml").write_text("# an earlier merge\n")
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("escape")  # nothing happens
        assert app.screen.STEP == 5 and (workdir / "merge.yaml").read_text() == "# an earlier merge\n"
        await pilot.press("ctrl+n", "n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.STEP == 6 and "verified" in status_text(app)
    assert (workdir / "merge.yaml").read_text() == "# an earlier merge\n"
    assert (workdir / "merge-2.yaml").read_text() == app.state.config_text()
    assert app.state.config_path == "merge-2.yaml"


def test_bars_are_scaled_to_the_range_not_to_the_data() -> None:
    from tui_merge.tui.bars import bar

    assert bar(0.5, 0, 1, 8) == "████    "
    assert bar(0.0, 0, 1, 4) == "    " and bar(1.0, 0, 1, 4) == "████" and bar(1.7, 0, 1, 4) == "████"
    assert bar(0.25, 0, 1, 3) == "▊  "  # 0.25 of 24 eighths: 6
    assert bar(3.0, 0, 10, 10) == "███       "


async def test_each_layer_value_draws_a_bar_on_the_parameter_range_and_the_mark_survives_a_split(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="linear"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(LayerTable)
        grid = app.state.grid
        first_layer = next(index for index, row in enumerate(grid.rows) if row.layer == 0)
        await pilot.press(*["down"] * first_layer, "m", "minus", "right", "plus", "plus")

        def cells(row: int) -> list[str]:
            return [str(cell) for cell in table.get_row_at(row)[1 : 1 + len(grid.columns)]]

        width = table.bar_width
        assert cells(first_layer) == [f" 0.45 {bar(0.45, 0, 1, width)}", f" 0.60 {bar(0.6, 0, 1, width)}"]
        assert cells(first_layer + 1) == [f" 0.50 {bar(0.5, 0, 1, width)}"] * 2  # equal values, equal bars
        await pilot.press("s")
        assert str(table.get_row_at(first_layer)[0]) == "▸ layer 0"
        await pilot.press("s")
        assert str(table.get_row_at(first_layer)[0]) == "▸ layer 0"


async def test_ctrl_n_pressed_while_a_step_is_still_working_is_kept(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")  # before the analysis has reported
        await wait_until(pilot, lambda: isinstance(app.screen, StepScreen) and app.screen.STEP == 2)
        app.jump_to(5)
        await pilot.press("ctrl+n")  # before the plan is ready
        await wait_until(pilot, lambda: isinstance(app.screen, StepScreen) and app.screen.STEP == 6)
        await app.workers.wait_for_complete()


async def test_ctrl_n_kept_during_the_analysis_still_stops_at_an_error(workdir) -> None:
    app = WizardApp(state_with("base", "other"), start_step=1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.STEP == 1 and "Cannot merge" in status_text(app)


@pytest.mark.parametrize("method", ["ties", "dare_ties", "dare_linear", "della", "breadcrumbs", "slerp", "linear"])
def test_a_new_config_starts_from_the_same_values_in_the_wizard_and_the_template(workdir, method) -> None:
    from tui_merge.cli.template_cmd import template_recipe
    from tui_merge.methods.registry import get_method

    spec = get_method(method)
    state = state_with("base", "chat", method_name=method)
    base = state.effective_base
    template = template_recipe(spec, state.models, [state.infos[name] for name in state.models], base)
    wizard = state.recipe()
    for param in spec.params:
        if param.name in ("weight", spec.per_layer_param):
            continue
        values = [
            (recipe.parameters if param.scope == "global" else recipe.models[1].parameters).get(param.name)
            for recipe in (wizard, template)
        ]
        if param.suggested is not None:
            assert values == [param.suggested] * 2, param.name
        else:
            assert set(values) <= {None, param.default}, param.name
    if spec.param("density"):
        starting = spec.param("density").suggested
        assert 0 < starting < 1  # a pruning method's new config prunes


def test_the_same_model_twice_is_refused_by_template_and_run_and_warned_by_inspect(workdir, capsys) -> None:
    from tui_merge.cli import main

    (workdir / "link").symlink_to(workdir / "base")
    assert main(["template", "base", "base", "--method", "slerp", "-o", "t.yaml"]) == 2
    assert "base is listed twice" in capsys.readouterr().err and not (workdir / "t.yaml").exists()
    assert main(["template", "base", "link", "--method", "slerp", "-o", "t.yaml"]) == 2
    err = capsys.readouterr().err
    assert f"base and link are the same model ({workdir / 'base'})" in err and "list each model once" in err
    (workdir / "m.yaml").write_text("merge_method: linear\nmodels: [{model: base}, {model: ./link}]\n")
    assert main(["run", "m.yaml", "out"]) == 2
    assert "m.yaml: base and ./link are the same model" in capsys.readouterr().err
    assert not (workdir / "out").exists() and not (workdir / "out.partial").exists()
    assert main(["inspect", "base", "link"]) == 0
    assert "base and link are the same model" in " ".join(capsys.readouterr().out.split())


async def test_the_wizard_refuses_a_second_path_to_a_model_already_listed(workdir) -> None:
    (workdir / "link").symlink_to(workdir / "base")
    app = WizardApp(state_with("base"))
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press(*"link", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.state.models == ["base"]
        assert "base and link are the same model" in status_text(app)


async def test_models_with_the_same_folder_name_show_their_parent_and_a_delete_is_said(workdir) -> None:
    import shutil

    for run in ("run-a", "run-b"):
        shutil.copytree(workdir / "chat", workdir / run / "chat")
    app = WizardApp(state_with("base", "run-a/chat", "run-b/chat"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#models")
        assert [str(table.get_row_at(row)[1]) for row in range(3)] == ["base", "run-a/chat", "run-b/chat"]
        table.focus()
        await pilot.press("down", "delete")
        assert status_text(app) == "removed run-a/chat"


def test_encoder_rows_are_labelled_from_the_layout_and_integer_buffers_get_none(factory, tmp_path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from tui_merge.config.rendering import outside_rows
    from tui_merge.models.info import load_model_info

    bert = tmp_path / "bert"
    shutil.copytree(factory.family("bert"), bert)
    weights = load_file(bert / "model.safetensors")
    weights["bert.embeddings.position_ids"] = torch.arange(16, dtype=torch.int64)[None]
    weights["bert.pooler.dense.weight"] = torch.zeros(8, 8)
    save_file(weights, bert / "model.safetensors", metadata={"format": "pt"})
    rows = {row.filter: row.label for row in outside_rows(load_model_info(str(bert)))}
    assert rows["bert.embeddings.word_embeddings"] == "word embeddings"
    assert rows["bert.embeddings.position_embeddings"] == "position embeddings"
    assert rows["bert.embeddings.token_type_embeddings"] == "token-type embeddings"
    assert rows["bert.embeddings.LayerNorm"] == "embedding norm"
    assert rows["bert.pooler.dense"] == "pooler"
    assert not any("position_ids" in name for name in rows)
    # cls.predictions alone would also select the transform's tensors (the first matching filter wins)
    assert "cls.predictions" not in rows and rows["cls.predictions.bias"] == "output head"


async def test_the_layers_step_shows_what_each_model_changed_beside_the_values(workdir) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(workdir / "base", workdir / "tune")
    weights = load_file(workdir / "tune" / "model.safetensors")
    for name in weights:
        if ".layers.1.mlp." in name:
            weights[name] = weights[name] * 1.5
    save_file(weights, workdir / "tune" / "model.safetensors", metadata={"format": "pt"})
    app = WizardApp(state_with("base", "chat", "tune", method_name="linear"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(LayerTable)
        headings = [str(column.label) for column in table.columns.values()][-3:]
        assert headings == ["Δ2", "Δ3", "2~3"]
        rows = {row.layer: index for index, row in enumerate(app.state.grid.rows)}
        tune_layer_1 = str(table.get_row_at(rows[1])[-2])
        tune_layer_0 = str(table.get_row_at(rows[0])[-2])
        assert tune_layer_1 == " █ " and tune_layer_0 == "   "  # only layer 1's MLP moved, by 50%
        assert "3 tune" in str(app.screen.query_one("#insight-progress", Static).content)
        await pilot.press("right", "right", "right", "right", "plus")  # onto Δ2: read-only
        assert "shows what a model changed" in status_text(app)
    app = WizardApp(state_with("base", "chat", "tune", method_name="linear"), start_step=3)
    async with app.run_test(size=(120, 40)) as pilot:  # measured again? no: from the cache, and wide
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(LayerTable)
        assert [str(column.label) for column in table.columns.values()][-1] == "chat ~ tune"


async def test_below_80x24_the_wizard_says_the_terminal_is_too_small(workdir) -> None:
    from tui_merge.tui.modals import TooSmallScreen

    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        assert "The terminal is 70x20; tui-merge needs at least 80x24" in str(
            app.screen.query_one("#too-small", Static).content
        )
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert isinstance(app.screen, StepScreen) and app.screen.STEP == 0


async def test_a_lora_adapter_is_attached_to_a_model_row_and_taken_off_again(workdir) -> None:
    from test_lora_references import write_adapter

    from tui_merge.tui.modals import FolderPicker

    adapter = write_adapter(workdir / "adapters" / "chat-lora", workdir / "base")
    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#models").focus()
        await pilot.press("b", "a")  # base marked, then an adapter for it
        picker = app.screen
        assert isinstance(picker, FolderPicker)
        assert "Choose a LoRA adapter folder" in str(picker.query_one("Label").render())
        await pilot.press("slash", *str(adapter).lstrip("/"), "enter", "p")
        reference = f"base+{adapter}"
        await wait_until(pilot, lambda: app.state.models[0] == reference)
        assert app.state.base == reference and app.state.models[1] == "chat"
        assert "base now reads its weights through chat-lora: r 4 on 4 tensors" in status_text(app)
        table = app.screen.query_one("#models")
        assert "base+chat-lora" in str(table.get_row_at(0)[1])
        assert f"model: {reference}" in app.state.config_text()

        await pilot.press("A")
        await wait_until(pilot, lambda: app.state.models[0] == "base")
        assert app.state.base == "base" and "base has no adapter now" in status_text(app)


def interrupted_merge(workdir: Path, output: str, method: str = "slerp") -> int:
    """A merge of base and chat into ``output`` stopped after its first shard, as Ctrl-C leaves one; the shards."""
    from tui_merge.engine.events import ShardWritten
    from tui_merge.engine.job import MergeJob, run_job
    from tui_merge.engine.lock import partial_path
    from tui_merge.errors import TuiMergeError

    state = state_with("base", "chat", method_name=method, output=output, shard_size="30KB")
    control = MergeControl()
    job = MergeJob(state.loaded_config(), workdir / output, models=state.infos, keep_partial=True)
    with pytest.raises(TuiMergeError):
        run_job(job, on_event=lambda event: isinstance(event, ShardWritten) and control.stop(), control=control)
    assert partial_path(workdir / output).is_dir()
    return len(list(partial_path(workdir / output).glob("*.safetensors")))


@pytest.mark.parametrize("answer", ["r", "s", "another config"])
async def test_an_interrupted_merge_is_shown_on_review_and_run_resumes_it_or_starts_over(workdir, answer) -> None:
    from conftest import folder_digest

    from tui_merge.cli import main
    from tui_merge.tui.modals import ChoiceScreen

    interrupted_merge(workdir, "merged", method="linear" if answer == "another config" else "slerp")
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged", shard_size="30KB"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = str(app.screen.query_one("#destination", Static).content)
        if answer == "another config":
            assert "merged.partial is left from a merge of another config or of inputs changed since" in shown
        else:
            assert "merged.partial holds this interrupted merge, 1 shard(s) finished, which the run offers" in shown
        assert "Ready, but merged.partial " in status_text(app)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert "start over" in app.screen.question.lower()
        assert ("Resume it" in app.screen.question) == (answer != "another config")
        await pilot.press(answer if len(answer) == 1 else "s")
        await app.workers.wait_for_complete()
        await wait_until(pilot, lambda: "verified" in status_text(app))
        log = "\n".join(str(line.text) for line in app.screen.query_one("#log", RichLog).lines)
        assert ("resuming: 1 of" in log) == (answer == "r")
    assert not (workdir / "merged.partial").exists()
    assert main(["run", "merge.yaml", str(workdir / "replay")]) == 0
    assert folder_digest(workdir / "merged") == folder_digest(workdir / "replay")


@pytest.mark.parametrize("changed_on_disk", [False, True])
async def test_a_reopened_config_is_saved_back_without_asking_unless_it_changed_on_disk(
    workdir, changed_on_disk
) -> None:
    from tui_merge.cli import main
    from tui_merge.tui.modals import ChoiceScreen
    from tui_merge.tui.screens.run import RunScreen
    from tui_merge.wizard.reopening import load_state

    assert main(["template", "base", "chat", "--method", "slerp", "-o", "big.yaml"]) == 0
    state = load_state("big.yaml")
    state.output = "merged"
    if changed_on_disk:
        Path("big.yaml").write_text(Path("big.yaml").read_text() + "# edited elsewhere\n")
    app = WizardApp(state, start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.screen.pending() is None)
        await pilot.press("ctrl+n")
        if changed_on_disk:
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceScreen))
            assert "big.yaml already holds another config" in app.screen.question
            await pilot.press("escape")
        else:
            await wait_until(pilot, lambda: isinstance(app.screen, RunScreen))
            await app.workers.wait_for_complete()
    assert (workdir / "merged").is_dir() != changed_on_disk


async def test_every_layer_key_says_what_it_did_and_a_typed_value_fills_the_marked_range(workdir) -> None:
    from tui_merge.tui.layer_table import LayerTable

    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(LayerTable)
        await wait_until(pilot, lambda: table.grid is not None)

        async def press(*keys: str) -> str:
            await pilot.press(*keys)
            await pilot.pause()
            return status_text(app)

        assert (await press("down", "m")).startswith("marked layer 0")
        assert (await press("down", "plus")) == "layer 1 t: 0.55"
        assert (await press("g")) == "t filled from layer 0 (0.50) to layer 1 (0.55)" and table.mark is None
        assert (await press("u")).startswith("undone") and table.grid.value(2, 0) == 0.5
        assert (await press("ctrl+r")).startswith("redone") and table.grid.value(2, 0) == 0.55
        assert (await press("c")).startswith("copied layer 1")
        assert (await press("up", "v")) == "pasted layer 1's values into layer 0"
        assert (await press("1")) == "layer 0 taken wholly from the second model"
        await press("up", "m", "down", "down", "e")
        assert "from embeddings to layer 1" in status_text(app)
        await pilot.press("end", *["backspace"] * 6, *"0.7", "enter")
        await pilot.pause()
        assert status_text(app) == "t set to 0.70 from embeddings to layer 1" and table.mark is None
        assert [table.grid.value(row, 0) for row in range(3)] == [0.7, 0.7, 0.7]
        assert table.grid.value(3, 0) == 0.5  # past the range: untouched


async def test_hints_and_saves_are_said_in_the_status_line_never_in_a_toast_over_it(workdir) -> None:
    from textual.widgets._toast import Toast

    hint = "To see the lineage check, add demo-unrelated."
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=5, hint=hint)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: status_text(app) == hint)
        await wait_until(pilot, lambda: app.screen.pending() is None)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: status_text(app) == "Saved merge.yaml")
        assert not list(app.query(Toast)) and not list(app.screen.query(Toast))
    assert (workdir / "merge.yaml").is_file()


async def test_the_output_step_refuses_a_largest_shard_of_zero_as_the_plain_wizard_does(workdir) -> None:
    from textual.widgets import Input

    app = WizardApp(state_with("base", "chat", output="merged"), start_step=4)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#shard-size", Input).value = "0"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: "larger than 0 bytes" in status_text(app))
        assert app.screen.STEP == 4
