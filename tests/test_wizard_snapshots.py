"""Snapshot tests of every wizard step at 80x24 and 120x40 (pytest-textual-snapshot).

Baselines live in ``tests/__snapshots__``; regenerate them with
``pytest tests/test_wizard_snapshots.py --snapshot-update`` and look at the
report. They are only compared under the Textual version that drew them
(recorded in ``tests/snapshots_textual_version.txt``): a different renderer
draws different pixels without anything being wrong with the wizard.

A snapshot must come out the same on any machine, from any checkout path, on
a busy machine: models and outputs have fixed relative names, the free disk
space is a fixed figure, and text cursors do not blink.
"""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import textual
from snapshot_version import VERSION_FILE, drawn_with_this_textual

from tui_merge.models.info import load_model_info
from tui_merge.tui.app import WizardApp
from tui_merge.wizard.state import WizardState

FIXED_DISK = namedtuple("usage", "total used free")(2 << 40, 1 << 40, 1 << 40)
"""What every snapshot says about free disk space, whatever this machine has."""


def _drawn_with_this_textual(request: pytest.FixtureRequest) -> bool:
    if request.config.getoption("--snapshot-update", default=False):
        VERSION_FILE.parent.mkdir(exist_ok=True)
        VERSION_FILE.write_text(textual.__version__ + "\n")
        return True
    return drawn_with_this_textual()


@pytest.fixture()
def demo_folder(tmp_path_factory, monkeypatch, request) -> Path:
    if not _drawn_with_this_textual(request):
        pytest.skip(f"snapshots were drawn with another Textual than {textual.__version__}")
    folder = tmp_path_factory.getbasetemp() / "snapshot-models"
    if not folder.exists():
        from tui_merge.samples import build_demo_models

        build_demo_models(folder)
    work = tmp_path_factory.mktemp("snapshot-work")
    for model in ("demo-base", "demo-chat", "demo-unrelated"):
        shutil.copytree(folder / model, work / model)
    monkeypatch.chdir(work)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: FIXED_DISK)
    return work


def app_for(*names: str, start_step: int = 0, **values) -> WizardApp:
    state = WizardState(models=list(names), infos={name: load_model_info(name) for name in names}, **values)
    return WizardApp(state, start_step=start_step, blink_cursor=False)


async def settle(pilot) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def settle_layers(pilot) -> None:
    """Wait until the Layers step shows its figure columns (a message after its worker has ended)."""
    from tui_merge.tui.layer_table import LayerTable

    await settle(pilot)
    for _ in range(1200):  # a minute at most, which only a failing test waits out (ten seconds were seen to pass)
        if pilot.app.screen.query_one(LayerTable).insight is not None:
            break
        await pilot.pause(0.05)
    else:
        raise AssertionError("the Layers step's figure columns never came")
    # The figure columns change the table's widths once more after they arrive; on a busy machine that layout
    # can land after the next key. A DataTable measures its columns when it is idle, which a table under a dialog
    # opened first never is (the help then covers a table with its row labels cut short): wait for it too.
    table = pilot.app.screen.query_one(LayerTable)
    for _ in range(1200):
        if measured(table):
            break
        await pilot.pause(0.05)
    await hold_still(pilot)


def measured(table) -> bool:
    """True when a DataTable has no added rows nor changed cells left to measure (it measures when idle)."""
    return not (table._require_update_dimensions or table._new_rows or table._updated_cells)


async def hold_still(pilot, pictures: int = 4) -> None:
    """Wait until ``pictures`` pictures of the screen, each after the app went idle and a moment passed, are the
    same. Two were not enough on a busy machine: a process that gets no time between two pictures shows the same
    one twice while a widget under a dialog still has its redraw to do (the help over the Layers step once showed
    the table's cursor as focused)."""
    shown, same = None, 0
    for _ in range(200):
        await pilot.pause()
        await pilot.pause(0.05)
        picture = pilot.app.export_screenshot()
        same = same + 1 if picture == shown else 1
        if same >= pictures:
            break
        shown = picture


def layers_after(*keys: str):
    """The Layers step settled, ``keys`` pressed, and the screen still again (a table that splits its columns
    lays out the lines above it once more, which on a busy machine lands after the last key)."""

    async def run_before(pilot) -> None:
        await settle_layers(pilot)
        await pilot.press(*keys)
        await hold_still(pilot)

    return run_before


async def help_over_method(pilot) -> None:
    """The Method step settled, then its help open and settled too.

    The help is drawn over the Method step, not the Layers step: a DataTable under a dialog showed its columns
    at their headings' widths in about one CI run in three (rows added but never measured, or the screen below
    never repainted after they were), and no wait on the table's own state made that picture steady. The help's
    own drawing (paragraphs, keys, scrolling) is the same over any step."""
    await settle(pilot)
    await hold_still(pilot)
    await pilot.press("f1")
    await hold_still(pilot)


SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


@pytest.mark.parametrize("size", SIZES)
def test_models_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", "demo-unrelated", base="demo-base")
    assert snap_compare(app, press=["tab"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_analysis_snapshot(snap_compare, demo_folder, size) -> None:
    assert snap_compare(app_for("demo-base", "demo-unrelated", start_step=1), run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_method_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", start_step=2, method_name="ties")
    assert snap_compare(app, run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_layers_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", start_step=3, method_name="slerp")
    keys = ["down", "1", "m", "down", "down", "down", "0", "g"]
    assert snap_compare(app, run_before=layers_after(*keys), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_layers_split_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", start_step=3, method_name="slerp")
    keys = ["s", "down", "0", "m", "down", "down", "down", "1", "g"]
    assert snap_compare(app, run_before=layers_after(*keys), terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_output_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", start_step=4, output="merged")
    assert snap_compare(app, run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_review_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", start_step=5, method_name="slerp", output="merged")
    assert snap_compare(app, run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_run_snapshot(snap_compare, demo_folder, monkeypatch, size) -> None:
    """The finished Run step; the screen's clock and the engine's read 0 at the start and 1 s after it."""
    from types import SimpleNamespace

    from tui_merge.engine import executor
    from tui_merge.tui.screens import run

    for module in (run, executor):
        readings = iter([0.0])
        monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda readings=readings: next(readings, 1.0)))
    app = app_for("demo-base", "demo-chat", start_step=6, method_name="slerp", output="merged")
    assert snap_compare(app, run_before=settle, terminal_size=size)


@pytest.mark.parametrize("size", SIZES)
def test_help_snapshot(snap_compare, demo_folder, size) -> None:
    app = app_for("demo-base", "demo-chat", start_step=2, method_name="slerp")
    assert snap_compare(app, run_before=help_over_method, terminal_size=size)
