"""The wizard driven with Textual's Pilot at 80x24, every step, and one whole merge by keys alone."""

from __future__ import annotations

import io
import threading

import pytest
from conftest import folder_digest
from rich.console import Console
from textual.widgets import DataTable, Input, RadioButton, RadioSet, Static

from tui_merge.cli import main
from tui_merge.models.info import load_model_info
from tui_merge.tui.app import WizardApp
from tui_merge.tui.layer_table import LayerTable
from tui_merge.tui.modals import ConfirmScreen, ErrorScreen
from tui_merge.wizard.reopening import load_state
from tui_merge.wizard.state import WizardState

SIZE = (80, 24)


async def wait_until(pilot, condition, seconds: float = 60.0) -> None:
    """Let the app run until ``condition()`` holds (work started from callbacks has no handle to await); a minute
    at most, which only a failing test waits out, so a busy machine never fails one."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    shown = pilot.app.screen.query("#status")
    status = shown.first().content if shown else ""
    raise AssertionError(f"the wizard did not get there in time (screen {pilot.app.screen}, status {status!s})")


def state_with(*names: str, **values) -> WizardState:
    return WizardState(models=list(names), infos={name: load_model_info(name) for name in names}, **values)


def text_of(app: WizardApp, selector: str) -> str:
    """The plain text a Static shows (a Rich Syntax shows its code)."""
    content = app.screen.query_one(selector, Static).content
    return getattr(content, "code", None) or str(getattr(content, "plain", content))


def status_text(app: WizardApp) -> str:
    return text_of(app, "#status")


async def test_models_step_adds_orders_marks_and_removes(workdir) -> None:
    app = WizardApp(WizardState())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        assert "Add at least two models" in status_text(app)
        for name in ("base", "chat", "other"):
            await pilot.press(*name, "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert app.state.models == ["base", "chat", "other"]
        await pilot.press("tab", "down", "b")
        assert app.state.base == "chat"
        await pilot.press("shift+up")
        assert app.state.models == ["chat", "base", "other"]
        await pilot.press("down", "down", "delete")
        assert app.state.models == ["chat", "base"]
        table = app.screen.query_one("#models", DataTable)
        assert table.row_count == 2
        await pilot.press("shift+tab", *"missing-model", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Model folder missing-model does not exist" in status_text(app)


async def test_the_model_tables_keys_act_only_when_it_has_the_focus(workdir) -> None:
    """The table owns its row keys: shift+arrows or x typed while the path field has the focus edit no row."""
    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=SIZE) as pilot:
        app.screen.query_one("#path", Input).focus()
        await pilot.press("shift+down", "x", "b")
        assert app.state.models == ["base", "chat"] and app.screen.query_one("#path", Input).value == "xb"
        app.screen.query_one("#models", DataTable).focus()
        await pilot.press("shift+down")
        assert app.state.models == ["chat", "base"]
        assert app.screen.query_one("#models", DataTable).cursor_row == 1  # the cursor goes with the model


async def test_analysis_step_blocks_on_errors_and_offers_the_vocab_fix(workdir) -> None:
    app = WizardApp(state_with("base", "other"), start_step=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+n")
        assert status_text(app) == "Cannot merge: the error above blocks it; escape goes back."
        assert app.screen.STEP == 1
        # The blocking sentence is said once, at the top of the step, not again below the table.
        console = Console(width=80, record=True, file=io.StringIO())
        for part in ("#verdict", "#report"):
            console.print(app.screen.query_one(part, Static).content)
        shown = console.export_text()
        assert shown.count("do not share a base") == 1 and "ERROR" not in shown

    app = WizardApp(state_with("base", "wide-vocab"), start_step=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.query_one("#vocab", RadioSet).display
        assert app.state.vocab == "pad"
        app.screen.query_one("#vocab", RadioSet).focus()
        assert app.screen.query_one("#vocab-union", RadioButton).disabled  # wide-vocab has no tokenizer
        await pilot.press("enter")  # the highlight starts on the first choice
        assert app.state.vocab == "truncate"
        await pilot.press("ctrl+n")
        assert app.screen.STEP == 2


async def test_analysis_offers_union_when_every_model_has_a_tokenizer(workdir) -> None:
    app = WizardApp(state_with("base", "chat-tokens"), start_step=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.state.vocab == "union"
        assert "tui_merge:\n  seed: 0" in app.state.config_text() and "vocab: union" in app.state.config_text()
        union = next(fix for finding in app.screen.report.findings for fix in finding.fixes if fix.key == "union")
        assert "plus 4 tokens, 260 rows matched by token" in union.summary

    app = WizardApp(state_with("base", "reordered"), start_step=1)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = [button.id for button in app.screen.query(RadioButton) if button.display]
        assert shown == ["vocab-position", "vocab-union"] and app.state.vocab == "union"
        app.screen.query_one("#vocab", RadioSet).focus()
        await pilot.press("enter")
        assert app.state.vocab == "position" and "vocab:" not in app.state.config_text()


async def test_method_step_builds_the_form_and_validates_as_you_type(workdir) -> None:
    app = WizardApp(state_with("base", "chat", "other"), start_step=2)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(6):  # linear -> ties
            await pilot.press("down")
        assert app.state.method_name == "ties"
        density = app.screen.query_one("#param-density-1", Input)
        density.focus()
        await pilot.press("end", "backspace", "backspace", "backspace", "1", ".", "5")
        assert "density must be between 0 and 1" in status_text(app)
        await pilot.press("ctrl+n")
        assert app.screen.STEP == 2 and "Fix density" in status_text(app)
        await pilot.press("backspace", "backspace", "backspace", "0", ".", "3")
        assert app.state.value("density", "chat") == 0.3
        await pilot.press("ctrl+n")
        assert app.screen.STEP == 3


async def test_layers_step_keys(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()  # the figure columns have arrived: keys land on a settled table
        await pilot.pause()
        grid = app.state.grid
        layer = next(index for index, row in enumerate(grid.rows) if row.layer == 0)
        await pilot.press(*["down"] * layer)
        await pilot.press("plus", "plus", "right_square_bracket")
        assert grid.value(layer, 0) == pytest.approx(0.61)
        await pilot.press("minus", "left_square_bracket")
        assert grid.value(layer, 0) == pytest.approx(0.55)
        await pilot.press("1", "m", "down", "0", "g")
        assert grid.profile(0) == [1.0, 0.0]
        await pilot.press("c", "up", "v")
        assert grid.value(layer, 0) == 0.0
        await pilot.press("u")
        assert grid.value(layer, 0) == 1.0
        await pilot.press("ctrl+r")
        assert grid.value(layer, 0) == 0.0
        await pilot.press("e", "end", *["backspace"] * 6, "0", ".", "2", "5", "enter")
        assert grid.value(layer, 0) == 0.25
        await pilot.press("e", "escape")
        assert app.screen.STEP == 3
        await pilot.press("ctrl+n")
        assert app.screen.STEP == 4


async def test_the_layers_step_says_every_editing_key_in_a_line_of_its_own_and_the_footer_the_steps(workdir) -> None:
    from textual.widgets import Footer

    actions = {binding.action for binding in LayerTable.BINDINGS}
    legend_actions = {action for _, _, said in LayerTable.KEY_LEGEND for action in said}
    assert actions - legend_actions == {"split"} and legend_actions <= actions
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        legend = str(app.screen.query_one("#layer-keys").render())
        footer = " ".join(key.description for key in app.screen.query_one(Footer).query("FooterKey"))

        assert legend.startswith("e type  +- ±.05  ][ ±.01  0 1 whole layer") and len(legend) <= SIZE[0]
        assert "u ^r undo" in legend
        assert "split" in footer and "next" in footer and "nudge" not in footer and "type" not in footer


async def test_the_layer_table_refuses_typed_values_out_of_range_and_reports_each_edit(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()  # the figure columns have arrived: keys land on a settled table
        await pilot.pause()
        grid = app.state.grid
        layer = next(index for index, row in enumerate(grid.rows) if row.layer == 0)
        await pilot.press(*["down"] * layer, "e", "end", *["backspace"] * 6, "1", ".", "5", "enter")
        assert "t must be between 0 and 1, got 1.5." in status_text(app) and grid.value(layer, 0) == 0.5
        await pilot.press("escape", "plus")
        await pilot.pause()
        assert grid.value(layer, 0) == 0.55 and "0.55" in status_text(app) and "must be" not in status_text(app)


async def test_output_step_refuses_unsafe_folders_and_confirms_replacing(workdir) -> None:
    (workdir / "taken").mkdir()
    (workdir / "taken" / "tui_merge_config.yaml").write_text("an earlier merge")
    app = WizardApp(state_with("base", "chat"), start_step=4)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        assert "Choose an output folder" in status_text(app)
        await pilot.press(*"base/merged")
        await pilot.press("ctrl+n")
        assert "inside input model base" in status_text(app)
        await pilot.press(*["backspace"] * 11, *"taken", "ctrl+n")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        assert app.state.replace_output and app.screen.STEP == 5


async def burst(pilot, *keys: str) -> None:
    """Send keys the way a terminal delivers typed-ahead input: all at once, with no pause between them."""
    from textual import events

    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(pilot.app)
        pilot.app._driver.send_message(event)
    await pilot.pause(0.2)


async def test_typing_ahead_then_next_uses_what_was_typed(workdir) -> None:
    app = WizardApp(state_with("base", "chat"), start_step=4)
    async with app.run_test(size=SIZE) as pilot:
        await burst(pilot, *"fast-out", "ctrl+n")
        assert app.state.output == "fast-out"
        assert app.screen.STEP == 5


async def test_review_step_shows_the_yaml_and_plan_and_saves(workdir) -> None:
    app = WizardApp(state_with("base", "chat", output="merged", config_path="saved.yaml"), start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert text_of(app, "#yaml") == app.state.config_text()
        assert "tui-merge run saved.yaml merged" in text_of(app, "#command")
        assert "Plan: linear of 2 models" in text_of(app, "#plan")
        await pilot.press("ctrl+s")
        assert (workdir / "saved.yaml").read_text() == app.state.config_text()


async def test_run_step_cancel_leaves_nothing(workdir, monkeypatch) -> None:
    from tui_merge.engine import executor

    real_execute = executor.execute

    def execute_after_cancel(*args, control, **kwargs):
        while not control.stopped:
            threading.Event().wait(0.025)
        return real_execute(*args, control=control, **kwargs)

    monkeypatch.setattr(executor, "execute", execute_after_cancel)
    app = WizardApp(state_with("base", "chat", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Merge cancelled" in status_text(app)
    assert not (workdir / "merged").exists() and not (workdir / "merged.partial").exists()


async def test_a_failing_merge_shows_an_error_dialog(workdir) -> None:
    app = WizardApp(state_with("base", "wide-vocab", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, ErrorScreen)
        assert "Vocabulary sizes differ" in app.screen.message


async def test_whole_merge_by_keys_then_headless_replay_is_byte_identical(workdir) -> None:
    app = WizardApp(WizardState())
    async with app.run_test(size=SIZE) as pilot:
        for name in ("base", "chat"):
            await pilot.press(*name, "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
        await pilot.press("ctrl+n")  # analysis
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+n", "down", "ctrl+n")  # method: slerp
        await pilot.press("down", "1", "m", "down", "0", "g", "up", "plus")  # layers: embeddings, then layer 0
        await pilot.press("ctrl+n", *"merged", "ctrl+n")  # output
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+s", "ctrl+n")  # review, then run
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "Merged into merged and verified" in status_text(app)
        assert not app.screen.query_one("#progress #eta").display  # nothing left to estimate
        log = "\n".join(str(line.text) for line in app.screen.query_one("#log").lines)
        assert "ok    transformers  LlamaForCausalLM takes every tensor" in log  # as tui-merge verify says it
    config = (workdir / "merge.yaml").read_text()
    assert "merge_method: slerp" in config and "- 1.00  # layer 0" in config

    assert main(["run", "merge.yaml", "replayed"]) == 0
    assert folder_digest(workdir / "merged") == folder_digest(workdir / "replayed")


async def test_help_escape_and_quit_confirmation(workdir) -> None:
    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert "Help: 1 Models" in str(app.screen.query("Label").first().render())
        await pilot.press("escape", "escape")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.screen.STEP == 0


async def test_reopening_a_saved_config_shows_the_same_values(workdir) -> None:
    from tui_merge.cli.wizard_cmd import wizard_state

    state = state_with("base", "chat", method_name="slerp")
    state.rebuild_grid()
    state.grid.set(4, 0, 0.9)
    (workdir / "merge.yaml").write_text(state.config_text())

    reopened = wizard_state([], "merge.yaml")
    app = WizardApp(reopened, start_step=3)
    async with app.run_test(size=SIZE):
        table = app.screen.query_one("#grid", DataTable)
        assert str(table.get_cell_at((4, 1))).split()[0] == "0.90"


async def test_folder_browser_and_cache_list_add_models(workdir) -> None:
    from test_resolve import add_to_cache

    from tui_merge.tui.modals import CachePicker, FolderPicker

    cache = workdir / "hub"
    add_to_cache(cache, "acme/tiny-chat", workdir / "chat", "a" * 40)
    app = WizardApp(WizardState(), cache_dir=cache)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+l")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, CachePicker)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.state.models == ["acme/tiny-chat"])

        await pilot.press("ctrl+o")
        assert isinstance(app.screen, FolderPicker)
        tree = app.screen.query_one("DirectoryTree")
        # The tree loads in a worker that stays alive, so wait for its entries rather than for all workers.
        for _ in range(200):
            names = [node.data.path.name for node in tree.root.children]
            if "base" in names:
                break
            await pilot.pause(0.05)
        await pilot.press(*["down"] * (names.index("base") + 1), "p")
        await wait_until(pilot, lambda: len(app.state.models) == 2)
        assert app.state.models[-1] == str(workdir / "base")


async def test_command_palette_jumps_to_a_step_and_saves(workdir) -> None:
    app = WizardApp(state_with("base", "chat", config_path="from-palette.yaml"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p", *"step 4", "enter")
        await pilot.pause()
        assert app.screen.STEP == 3
        await pilot.press("ctrl+p", *"save config", "enter")
        await pilot.pause()
        assert (workdir / "from-palette.yaml").read_text() == app.state.config_text()
        await pilot.press("escape")
        assert app.screen.STEP == 2


async def test_layers_split_into_attention_and_mlp_with_s(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()  # the figure columns are there (after the editable ones)
        await pilot.pause()
        layer = next(index for index, row in enumerate(app.state.grid.rows) if row.layer == 0)
        await pilot.press("s")
        table = app.screen.query_one("#grid", DataTable)
        labels = [str(column.label) for column in table.columns.values()]
        assert labels == ["row", "t\nattn", "t\nmlp", "t\nrest", "Δ2"]
        assert str(table.get_cell_at((0, 1))).strip() == "·"
        await pilot.press(*["down"] * layer, "1", "right", "minus")
        assert app.state.grid.values[layer] == pytest.approx([1.0, 0.95, 1.0])
        assert "filter: self_attn" in app.state.config_text()
        await pilot.press("s")
        assert [str(column.label) for column in table.columns.values()] == ["row", "t", "Δ2"]
        assert app.state.grid.values[layer] == [1.0]


async def test_command_palette_loads_a_config(workdir) -> None:
    saved = state_with("base", "chat", method_name="slerp", config_path="saved.yaml")
    saved.rebuild_grid()
    saved.grid.set(4, 0, 0.8)
    (workdir / "saved.yaml").write_text(saved.config_text())
    app = WizardApp(WizardState())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p", *"load config", "enter")
        await pilot.pause()
        await pilot.press(*"missing.yaml", "enter")
        await pilot.pause()
        assert app.screen.STEP == 0 and app.state.models == []
        await pilot.press("ctrl+p", *"load config", "enter")
        await pilot.pause()
        await pilot.press(*"sav", "right", "enter")
        await wait_until(pilot, lambda: getattr(app.screen, "STEP", None) == 5)
        assert app.state.config_path == "saved.yaml"
        assert app.state.config_text() == saved.config_text()
        await pilot.press("escape", "escape")
        assert str(app.screen.query_one("#grid", DataTable).get_cell_at((4, 1))).split()[0] == "0.80"


@pytest.mark.parametrize("source", ["union", "base", "model:chat-tokens"])
async def test_a_recipe_naming_a_tokenizer_source_opens_on_every_step(workdir, source) -> None:
    (workdir / "recipe.yaml").write_text(
        "merge_method: linear\nbase_model: base\nmodels:\n  - model: base\n  - model: chat-tokens\n"
        f"tokenizer_source: {source}\n"
    )
    state = load_state("recipe.yaml")
    app = WizardApp(state, start_step=5)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert f"tokenizer_source: {source}" in app.state.config_text()
        await pilot.press("escape")  # back to the output step
        await pilot.pause()
        assert app.screen.STEP == 4
        assert app.state.tokenizer_source == source


def test_a_newer_measuring_count_replaces_a_queued_one_but_never_a_problem() -> None:
    from tui_merge.tui.messages import InsightProgress

    assert InsightProgress(1, 10).can_replace(InsightProgress(2, 10))
    assert not InsightProgress(0, 0, "the disk is gone").can_replace(InsightProgress(2, 10))


async def on_layer_zero(app: WizardApp, pilot):
    """The Layers step settled (its figure columns in), the cursor on layer 0's first value: the grid and that
    row's index."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    grid = app.state.grid
    layer = next(index for index, row in enumerate(grid.rows) if row.layer == 0)
    await pilot.press(*["down"] * layer)
    return grid, layer


def post_burst(app: WizardApp, *keys: str) -> None:
    """Keys as they arrive over a slow SSH link or from a fast typist on a loaded machine: all at once, without
    the pause after each that ``pilot.press`` makes."""
    from textual import events
    from textual.keys import _character_to_key

    for key in keys:
        if len(key) == 1:
            app.post_message(events.Key(_character_to_key(key), key))
        else:
            app.post_message(events.Key(key, None))


async def test_a_value_typed_in_one_burst_after_backspaces_is_the_value_typed(workdir) -> None:
    """Textual runs a text field's bound keys (backspace, arrows, enter) only after they have travelled up to the
    app, but inserts a typed character at once: "backspace 4" in one burst became "14" then a backspace."""
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        grid, layer = await on_layer_zero(app, pilot)
        await pilot.press("e")
        post_burst(app, "end", *["backspace"] * 6, "0", ".", "4", "enter")
        await wait_until(pilot, lambda: not app.screen.query_one("#cell-editor", Input).display)
        assert grid.value(layer, 0) == 0.4
        await pilot.press("e")
        post_burst(app, "end", "backspace", "left", "backspace", "3", "home", "ctrl+k", "0", ".", "2", "enter")
        await wait_until(pilot, lambda: not app.screen.query_one("#cell-editor", Input).display)
        assert grid.value(layer, 0) == 0.2


@pytest.mark.parametrize("opening", ["e", "enter"])
async def test_a_value_typed_in_the_same_burst_as_the_key_that_opens_the_editor_goes_to_the_editor(
    workdir, opening
) -> None:
    """The keys typed after ``e`` reached the table before its editor opened: ``e0.3`` took the layer wholly from
    the first model (0 is a table key) and typed nothing."""
    app = WizardApp(state_with("base", "chat", method_name="linear"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        grid, layer = await on_layer_zero(app, pilot)
        before = [[grid.value(row, column) for column in range(len(grid.columns))] for row in range(len(grid.rows))]
        post_burst(app, opening, "ctrl+u", "0", ".", "3", "enter")
        await wait_until(pilot, lambda: grid.value(layer, 0) == 0.3)
        await wait_until(pilot, lambda: app.focused is app.screen.query_one(LayerTable))
        after = [[grid.value(row, column) for column in range(len(grid.columns))] for row in range(len(grid.rows))]
        before[layer][0] = 0.3
        assert after == before  # nothing else changed: no 0 pressed on the table
        assert not app.screen.query_one("#cell-editor", Input).display
        post_burst(app, "e", "ctrl+u", "1", "escape", "plus")  # escape keeps the value; + is the table's again
        await wait_until(pilot, lambda: grid.value(layer, 0) == pytest.approx(0.35))
        await wait_until(pilot, lambda: "0.35" in status_text(app))


async def test_keys_typed_behind_a_refused_value_stay_in_the_editor(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        grid, layer = await on_layer_zero(app, pilot)
        post_burst(app, "e", "ctrl+u", "2", "enter", "backspace", "0", ".", "7", "enter", "minus")
        await wait_until(pilot, lambda: grid.value(layer, 0) == pytest.approx(0.65))  # 0.7, then - on the table
        assert not app.screen.query_one("#cell-editor", Input).display


async def test_keys_typed_behind_tab_go_to_the_field_tab_moved_to(workdir) -> None:
    """Tab moved the focus only once it had travelled up to the screen: the keys typed behind it went to the
    widget it left (a path typed after shift+tab from the models table marked a base with its b)."""
    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("tab")
        table = app.screen.query_one("#models", DataTable)
        assert app.focused is table
        post_burst(app, "shift+tab", "b", "a", "s")
        path = app.screen.query_one(Input)
        await wait_until(pilot, lambda: path.value == "bas")
        assert app.state.base is None and app.focused is path
        post_burst(app, "tab", "down", "b")
        await wait_until(pilot, lambda: app.state.base == "chat")
        assert path.value == "bas"


async def test_paths_typed_one_after_another_are_added_in_that_order_each_whole(workdir) -> None:
    """The path field kept its text until the model was inspected, so a second path typed meanwhile (or pasted
    with the first) was appended to the first and then wiped with it."""
    app = WizardApp(WizardState())
    async with app.run_test(size=SIZE) as pilot:
        post_burst(app, *"chat", "enter", *"missing", "enter", *"base", "enter")
        await wait_until(pilot, lambda: len(app.state.models) == 2 and not app.workers)
        assert app.state.models == ["chat", "base"]
        path = app.screen.query_one("#path", Input)
        await wait_until(pilot, lambda: path.value == "missing")  # given back to be corrected
        assert "Model folder missing does not exist" in app.screen.query_one("#status", Static).content.plain


async def test_tab_from_the_method_list_reaches_the_first_parameter(workdir) -> None:
    """The parameter form's scroll container took the first tab itself, a stop where nothing showed the focus."""
    app = WizardApp(state_with("base", "chat", method_name="ties"), start_step=2)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("tab")
        assert app.focused is app.screen.query_one("#param-density-1", Input)
        await pilot.press("shift+tab")
        assert app.focused is app.screen.query_one("#methods")


async def test_several_paths_pasted_one_per_line_are_each_added(workdir) -> None:
    """A terminal pastes as one event: the field took its first line and dropped the rest."""
    from textual import events

    app = WizardApp(WizardState())
    async with app.run_test(size=SIZE) as pilot:
        path = app.screen.query_one("#path", Input)
        path.value = "ch"  # typed before the paste: the pasted text goes on from it
        path.cursor_position = 2
        path.post_message(events.Paste("at\r\nbase\nbas"))
        await wait_until(pilot, lambda: len(app.state.models) == 2)
        assert app.state.models == ["chat", "base"] and path.value == "bas"  # an unfinished line stays to finish


async def test_the_table_reached_by_tab_while_its_editor_is_open_takes_its_keys_again(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp"), start_step=3)
    async with app.run_test(size=SIZE) as pilot:
        grid, layer = await on_layer_zero(app, pilot)
        before = grid.value(layer, 0)
        await pilot.press("e", "shift+tab")
        assert app.focused is app.screen.query_one(LayerTable)
        await pilot.press("plus")
        assert grid.value(layer, 0) == pytest.approx(before + 0.05)
