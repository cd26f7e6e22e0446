"""The wizard's LoRA extraction, driven with Pilot at 80x24 from the Models step."""

from __future__ import annotations

import json

from test_wizard_tui import SIZE, state_with, wait_until
from textual.widgets import Input, Static

from tui_merge.tui.app import WizardApp
from tui_merge.tui.screens.extract import ExtractScreen


def status(app: WizardApp) -> str:
    return str(app.screen.query_one("#tool-status", Static).render())


async def test_ctrl_t_then_l_cuts_an_adapter_of_the_fine_tune_with_a_line_per_module(workdir) -> None:
    app = WizardApp(state_with("base", "chat", base="base"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t", "l")
        await wait_until(pilot, lambda: isinstance(app.screen, ExtractScreen))
        app.screen.query_one("#rank", Input).value = "4"
        app.screen.query_one("#folder", Input).value = "lora"
        await pilot.pause()
        command = str(app.screen.query_one("#extract-command", Static).render())
        assert "extract-lora --model chat --base base --max-rank 4 lora" in command.replace("\n", " ")

        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: "Wrote the adapter to lora" in status(app))

        settings = json.loads((workdir / "lora" / "adapter_config.json").read_text())
        assert settings["r"] == 4 and settings["base_model_name_or_path"] == "base"
        shown = app.screen.query_one("#extract-log")
        log = "\n".join(str(line.text) for line in shown.lines)
        assert "model.layers.0.self_attn.q_proj  rank 4  keeps" in log
        for _ in range(5):  # the status's second line arrives, and the log gives up a line to it
            await pilot.pause(0.05)
        assert shown.max_scroll_y > 0 and shown.scroll_y == shown.max_scroll_y  # its last line in sight
        await pilot.press("escape")
        assert app.screen.STEP == 0  # back on the Models step


async def test_a_bad_rank_is_said_and_three_models_are_refused(workdir) -> None:
    app = WizardApp(state_with("base", "chat"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t", "l")
        await wait_until(pilot, lambda: isinstance(app.screen, ExtractScreen))
        app.screen.query_one("#rank", Input).value = "0"
        await pilot.press("ctrl+r")
        assert "rank must be a whole number of at least 1." in status(app)
        assert not (workdir / "chat-lora").exists()
        await pilot.press("f1")
        assert "Extract a LoRA adapter" in str(app.screen.query_one("Label").render())

    app = WizardApp(state_with("base", "chat", "other"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t", "l")
        await wait_until(pilot, lambda: isinstance(app.screen, ExtractScreen))
        title = str(app.screen.query_one("#extract-title", Static).render())
        assert "takes a base and one fine-tune; the Models step has 3 models" in title


def moe_status(app: WizardApp) -> str:
    return str(app.screen.query_one("#tool-status", Static).render())


async def test_ctrl_t_then_m_saves_a_moe_config_builds_it_and_the_config_replays_to_the_same_bytes(workdir) -> None:
    from textual.widgets import Select

    from tui_merge.cli import main
    from tui_merge.tui.screens.moe import MoeScreen

    app = WizardApp(state_with("base", "chat", base="base"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+t", "m")
        await wait_until(pilot, lambda: isinstance(app.screen, MoeScreen))
        app.screen.query_one("#prompt-0", Input).value = "Hello there"
        await pilot.press("ctrl+r")
        assert "Give chat a prompt: gate mode hidden routes by them." in moe_status(app)
        assert not (workdir / "moe.yaml").exists()

        app.screen.query_one("#gate", Select).value = "cheap_embed"
        app.screen.query_one("#prompt-1", Input).value = "def f(x):"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: "Built ./moe and verified" in moe_status(app))

    saved = (workdir / "moe.yaml").read_text()
    assert "gate_mode: cheap_embed" in saved and "positive_prompts:\n  - 'def f(x):'" in saved
    assert main(["moe", "moe.yaml", "again", "--no-verify"]) == 0
    assert (workdir / "again" / "model.safetensors").read_bytes() == (
        workdir / "moe" / "model.safetensors"
    ).read_bytes()
