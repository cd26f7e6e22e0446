"""The Run step's Try panel: continuations and perplexities of the merge and its parents, under Pilot."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from test_compare import transformers_perplexity
from test_wizard_tui import SIZE, state_with, wait_until
from textual.widgets import DataTable, Static

from tui_merge.evaluation.sample_text import SAMPLE_TEXT
from tui_merge.tui.app import WizardApp
from tui_merge.tui.screens.run import RunScreen
from tui_merge.tui.screens.try_merge import MAX_NEW_TOKENS, TryScreen

PROMPT = "the quick brown"


def greedy(folder: Path, prompt: str) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype="auto").eval()
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    output = model.generate(ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


def panel_text(screen: TryScreen, index: int) -> str:
    return str(screen.query_one(f"#panel-{index}", Static).render())


def status(screen: TryScreen) -> str:
    return str(screen.query_one("#try-status", Static).render())


async def open_try(pilot, app) -> TryScreen:
    await wait_until(pilot, lambda: isinstance(app.screen, RunScreen) and app.screen.succeeded, seconds=60)
    await pilot.press("t")
    await wait_until(pilot, lambda: isinstance(app.screen, TryScreen))
    return app.screen


async def test_try_continues_a_prompt_with_the_merge_and_each_parent_and_scores_them(workdir) -> None:
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_try(pilot, app)
        assert [label for label, _, _ in screen.models] == ["merged (merge)", "base", "chat"]
        await pilot.press(*PROMPT, "enter")
        await wait_until(pilot, lambda: status(screen).startswith("done"), seconds=60)
        assert panel_text(screen, 0) == greedy(workdir / "merged", PROMPT)
        assert panel_text(screen, 1) == greedy(workdir / "base", PROMPT)
        assert panel_text(screen, 2) == "skipped: it has no tokenizer files, so the text cannot be tokenized for it"

        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: status(screen).startswith("perplexity on the built-in sample"), seconds=60)
        table = screen.query_one("#scores", DataTable)
        rows = [[str(cell) for cell in table.get_row_at(index)] for index in range(table.row_count)]
        assert [row[0] for row in rows] == ["merged (merge)", "base", "chat"]
        for row, folder in zip(rows, (workdir / "merged", workdir / "base")):
            expected, tokens = transformers_perplexity(folder, SAMPLE_TEXT)
            assert float(row[1]) == pytest.approx(expected, abs=1e-3) and int(row[2]) == tokens
        assert rows[2][1] == "-" and rows[2][3].startswith("skipped: it has no tokenizer")
        assert sum(row[3] == "lowest" for row in rows) == 1

        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen))


async def test_escape_stops_a_continuation_at_the_next_token(workdir, monkeypatch) -> None:
    from tui_merge.evaluation import scoring

    gate, first_piece = threading.Event(), threading.Event()
    real_streamer = scoring.text_streamer

    def held_streamer(tokenizer, on_text, stop=None):
        def shown(piece: str) -> None:
            on_text(piece)
            first_piece.set()
            gate.wait(30)  # hold the generation until the test has pressed escape

        return real_streamer(tokenizer, shown, stop)

    monkeypatch.setattr(scoring, "text_streamer", held_streamer)
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_try(pilot, app)
        await pilot.press(*PROMPT, "enter")
        await wait_until(pilot, first_piece.is_set, seconds=60)
        await pilot.press("escape")  # stops, does not leave
        assert screen.stop.is_set() and isinstance(app.screen, TryScreen)
        gate.set()
        await wait_until(pilot, lambda: status(screen) == "stopped" and not screen.running, seconds=60)
        assert 0 < len(panel_text(screen, 0)) < len(greedy(workdir / "merged", PROMPT))
        assert panel_text(screen, 1) == ""  # the next model never started
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunScreen))


MARKUP = "[bold]not bold[/bold] [link=x]y[/link] [red"


async def test_a_model_s_words_are_shown_as_written_and_a_failure_is_said_with_the_wizard_still_up(
    workdir, monkeypatch
) -> None:
    from types import SimpleNamespace

    from tui_merge.evaluation import scoring

    calls = []

    def continuation(model, tokenizer, prompt, max_new_tokens, streamer=None):
        calls.append(prompt)
        if len(calls) == 1:
            streamer.on_text(MARKUP)
            return MARKUP
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(
        scoring, "text_streamer", lambda tokenizer, on_text, stop=None: SimpleNamespace(on_text=on_text)
    )
    monkeypatch.setattr(scoring, "continuation", continuation)
    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_try(pilot, app)
        await pilot.press(*PROMPT, "enter")
        await wait_until(pilot, lambda: status(screen).startswith("failed"), seconds=60)
        assert panel_text(screen, 0) == MARKUP
        assert status(screen) == "failed: RuntimeError: CUDA out of memory"
        await wait_until(pilot, lambda: not screen.running)
        assert app.is_running and isinstance(app.screen, TryScreen)


async def test_f1_shows_try_s_help_and_escape_closes_it_staying_in_try(workdir) -> None:
    from tui_merge.tui.modals import HelpScreen

    app = WizardApp(state_with("base", "chat", method_name="slerp", output="merged"), start_step=6)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_try(pilot, app)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        said = [what for _, what in app.screen.keys]
        assert any(what.startswith("score every model") for what in said) and any("stop" in what for what in said)
        assert "perplexity" in app.screen.text
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen)
