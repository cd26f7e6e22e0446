"""The wizard's headless core: layer-grid edits and the state's round trip through a config."""

from __future__ import annotations

import pytest

from tui_merge.config import parse_config
from tui_merge.config.rendering import OutsideRow
from tui_merge.engine.plan import build_plan
from tui_merge.errors import BadInputError
from tui_merge.models.info import load_model_info
from tui_merge.wizard.grid import GridColumn, LayerGrid
from tui_merge.wizard.state import WizardState


def grid(columns=None, depth: int = 5) -> LayerGrid:
    columns = columns or [GridColumn("t", "t", 0.0, 1.0)]
    return LayerGrid.filled([OutsideRow("embed_tokens", "embeddings")], depth, columns, [0.5] * len(columns))


def test_nudges_clamp_to_the_column_range_and_undo_redo() -> None:
    g = grid()
    g.nudge(1, 0, 0.05)
    g.nudge(1, 0, 0.6)

    assert g.value(1, 0) == 1.0
    assert g.undo() and g.value(1, 0) == pytest.approx(0.55)
    assert g.undo() and g.value(1, 0) == 0.5
    assert not g.undo()
    assert g.redo() and g.value(1, 0) == pytest.approx(0.55)


def test_gradient_fill_interpolates_between_mark_and_cursor() -> None:
    g = grid(depth=5)
    g.set(1, 0, 0.0)  # layer 0
    g.set(5, 0, 1.0)  # layer 4

    g.fill_gradient(0, 5, 1)

    assert g.profile(0) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert g.undo() and g.profile(0) == pytest.approx([0.0, 0.5, 0.5, 0.5, 1.0])


def test_copy_paste_and_take_from_a_model() -> None:
    weights = grid([GridColumn("a", "a"), GridColumn("b", "b")])
    weights.set(2, 0, 0.9)
    weights.paste_row(3, weights.copy_row(2))
    weights.take_from(4, 1)

    assert weights.values[3] == [0.9, 0.5]
    assert weights.values[4] == [0.0, 1.0]
    t = grid()
    t.take_from(2, 1)
    t.take_from(3, 0)
    assert (t.value(2, 0), t.value(3, 0)) == (1.0, 0.0)


def test_the_state_renders_a_config_that_runs_and_loads_back(llama_base, llama_finetune) -> None:
    infos = {str(path): load_model_info(str(path)) for path in (llama_base, llama_finetune)}
    state = WizardState(models=list(infos), infos=infos, method_name="slerp", out_dtype="bfloat16", seed=3)
    state.rebuild_grid()
    state.grid.set(state.grid.rows.index(next(r for r in state.grid.rows if r.layer == 1)), 0, 0.8)
    state.grid.set(0, 0, 0.1)

    text = state.config_text()
    loaded = parse_config(text, "merge.yaml")
    plan = build_plan(loaded, infos)
    again = WizardState.from_config(loaded, infos)

    assert "      - 0.80  # layer 1" in text
    assert plan.method.name == "slerp" and len(plan.tasks) == 21
    layer1 = next(task for task in plan.tasks if task.name == "model.layers.1.mlp.up_proj.weight")
    assert layer1.options["t"] == pytest.approx(0.8)
    assert again.grid.values == state.grid.values
    assert again.config_text() == text


def test_weights_per_model_round_trip(llama_base, llama_finetune, llama_unrelated) -> None:
    names = [str(path) for path in (llama_base, llama_finetune, llama_unrelated)]
    infos = {name: load_model_info(name) for name in names}
    state = WizardState(models=names, infos=infos, method_name="ties", base=names[0])
    state.rebuild_grid()
    state.grid.take_from(3, 1)
    state.set_value("density", 0.4, names[1])
    state.set_value("normalize", False)

    loaded = parse_config(state.config_text(), "merge.yaml")
    again = WizardState.from_config(loaded, infos)

    assert [column.key for column in state.grid.columns] == names[1:]
    assert again.grid.values == state.grid.values
    assert again.value("density", names[1]) == 0.4 and again.value("normalize") is False


def test_slices_configs_are_left_to_the_editor(llama_base) -> None:
    loaded = parse_config(
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {llama_base}, layer_range: [0, 2]}}]\n", "f.yaml"
    )

    with pytest.raises(BadInputError, match="stacks layers with slices"):
        WizardState.from_config(loaded, {})
