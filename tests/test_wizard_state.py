"""The wizard's headless core: layer-grid edits and the state's round trip through a config."""

from __future__ import annotations

import json

import pytest

from tui_merge.config import parse_config
from tui_merge.config.rendering import OutsideRow
from tui_merge.engine.plan import build_plan
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import get_method
from tui_merge.models.info import load_model_info
from tui_merge.wizard.grid import GridColumn, LayerGrid
from tui_merge.wizard.reopening import state_from_config
from tui_merge.wizard.state import WizardState


def grid(columns=None, depth: int = 5) -> LayerGrid:
    columns = columns or [GridColumn("t", "t", get_method("slerp").param("t"))]
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
    again = state_from_config(loaded, infos)

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
    again = state_from_config(loaded, infos)

    assert [column.key for column in state.grid.columns] == names[1:]
    assert again.grid.values == state.grid.values
    assert again.value("density", names[1]) == 0.4 and again.value("normalize") is False


def test_slices_configs_are_left_to_the_editor(llama_base) -> None:
    loaded = parse_config(
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {llama_base}, layer_range: [0, 2]}}]\n", "f.yaml"
    )

    with pytest.raises(BadInputError, match="stacks layers with slices"):
        state_from_config(loaded, {})


def test_a_reopened_config_keeps_its_chat_template_and_tokenizer_block_source(llama_base, llama_finetune) -> None:
    infos = {str(path): load_model_info(str(path)) for path in (llama_base, llama_finetune)}
    template = "{% for m in messages %}\n<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    text = (
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n"
        f"tokenizer: {{source: {llama_finetune}}}\nchat_template: {json.dumps(template)}\n"
    )

    again = parse_config(state_from_config(parse_config(text, "m.yaml"), infos).config_text(), "again.yaml")

    assert again.config.chat_template == template
    assert again.config.tokenizer_choice == f"model:{llama_finetune}"


def test_per_token_rows_are_left_to_the_editor(llama_base) -> None:
    loaded = parse_config(
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}]\ntokenizer: {{pad_to_multiple_of: 8}}\n", "f.yaml"
    )

    with pytest.raises(BadInputError, match="names rows per token or pads them"):
        state_from_config(loaded, {})


def mergekit_gradient(anchors: list[float], layer: int, depth: int) -> float:
    """mergekit's gradient at one layer, written out here independently of the code under test."""
    t = layer / (depth - 1)
    s = t * (len(anchors) - 1)
    i = int(s)
    j = min(i + 1, len(anchors) - 1)
    return (1 - (s - i)) * anchors[i] + (s - i) * anchors[j]


CLASSIC_SLERP = """\
merge_method: slerp
base_model: {base}
models:
  - model: {base}
  - model: {other}
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.4
"""


def test_the_classic_slerp_recipe_opens_split_by_attention_and_mlp(llama_base, llama_finetune) -> None:
    base, other = str(llama_base), str(llama_finetune)
    text = CLASSIC_SLERP.format(base=base, other=other)
    infos = {name: load_model_info(name) for name in (base, other)}
    state = state_from_config(parse_config(text, "classic.yaml"), infos)

    grid = state.grid
    assert state.split and grid.split
    assert [grid.heading(index) for index in range(3)] == ["t attn", "t mlp", "t rest"]
    depth = infos[base].depth
    for index in range(depth):
        assert grid.profile(0)[index] == pytest.approx(mergekit_gradient([0, 0.5, 0.3, 0.7, 1], index, depth))
        assert grid.profile(1)[index] == pytest.approx(mergekit_gradient([1, 0.5, 0.7, 0.3, 0], index, depth))
    assert grid.profile(2) == [0.4] * depth
    outside = [index for index, row in enumerate(grid.rows) if row.layer is None]
    assert [grid.value(index, 2) for index in outside] == [0.4] * len(outside)
    assert not any(grid.exists(index, 0) or grid.exists(index, 1) for index in outside)

    # Written back, every tensor gets the value the recipe gave it.
    original = build_plan(parse_config(text, "classic.yaml"), infos)
    rewritten = build_plan(parse_config(state.config_text(), "again.yaml"), infos)
    assert "filter: self_attn" in state.config_text() and "filter: mlp" in state.config_text()
    for before, after in zip(original.tasks, rewritten.tasks):
        assert before.name == after.name
        assert after.options["t"] == pytest.approx(before.options["t"])


def test_split_and_join_keep_the_values_where_they_can(llama_base, llama_finetune) -> None:
    names = [str(llama_base), str(llama_finetune)]
    state = WizardState(models=names, infos={name: load_model_info(name) for name in names}, method_name="linear")
    grid = state.rebuild_grid()
    layer = next(index for index, row in enumerate(grid.rows) if row.layer == 1)
    grid.set(layer, 1, 0.8)

    assert state.set_split(True) is None
    split = state.grid
    assert [split.heading(index) for index in range(6)][3:] == [
        f"{split.columns[3].label} attn",
        f"{split.columns[3].label} mlp",
        f"{split.columns[3].label} rest",
    ]
    assert [split.value(layer, index) for index in (3, 4, 5)] == [0.8, 0.8, 0.8]
    split.set(layer, 3, 0.1)
    split.set(0, 3, 0.7)  # a component cell outside the layers does not exist: ignored
    assert split.value(0, 3) == 0.5
    split.take_from(layer, 1)
    assert split.values[layer] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    split.set(layer, 5, 0.3)

    assert state.set_split(False) is None
    assert state.grid.values[layer] == [0.0, 0.3]


def test_models_whose_names_do_not_separate_components_cannot_split(factory) -> None:
    from tui_merge.config.rendering import component_filters

    names = {
        family: [(part.part, part.filter) for part in component_filters(load_model_info(str(factory.family(family))))]
        for family in ("llama", "gpt2", "gpt_neox", "opt")
    }
    assert names["llama"] == [("attn", "self_attn"), ("mlp", "mlp")]
    assert names["gpt2"] == [("attn", "attn"), ("mlp", "mlp")]
    assert names["gpt_neox"] == [("attn", ".attention."), ("mlp", "mlp")]  # bare, it would hit post_attention_layernorm
    assert names["opt"] == []  # fc1 / fc2 share no segment
    path = str(factory.family("opt"))
    state = WizardState(models=[path, path], infos={path: load_model_info(path)}, method_name="slerp")
    state.rebuild_grid()
    assert "do not separate attention from MLP" in state.set_split(True)
    assert not state.split


def test_the_output_rules_live_once_for_both_wizards(tmp_path, llama_base, llama_finetune) -> None:
    from tui_merge.models.info import load_model_info

    state = WizardState(
        models=[str(llama_base), str(llama_finetune)],
        infos={str(folder): load_model_info(str(folder)) for folder in (llama_base, llama_finetune)},
    )

    assert state.output_problem() == "Choose an output folder."
    state.output = str(llama_base / "merged")
    assert "is inside input model llama-base" in state.output_problem()
    state.output = str(llama_base.parent)
    assert "is inside output" in state.output_problem()
    state.output = str(tmp_path / "merged")
    assert state.output_problem() is None
    assert state.shard_size_problem("0") == "The largest shard must be larger than 0 bytes."
    assert state.shard_size_problem("lots") == "'lots' is not a size; write it like 5GB, 2000MiB or a number of bytes."
    assert state.shard_size_problem("2000MiB") is None
    assert [value for _, value in state.device_choices()] == ["auto", "cpu"]
    assert [value for _, value in state.tokenizer_choices()][-2:] == [f"model:{llama_base}", f"model:{llama_finetune}"]


def test_adding_removing_and_replacing_a_model_keep_the_list_the_base_and_the_table_in_step(
    llama_base, llama_finetune, llama_second_finetune
) -> None:
    names = [str(llama_base), str(llama_finetune), str(llama_second_finetune)]
    infos = {name: load_model_info(name) for name in names}
    state = WizardState(method_name="linear")
    for name in names[:2]:
        state.add_model(name, infos[name])
    state.base = names[1]
    state.grid = state.rebuild_grid()

    state.add_model(names[2], infos[names[2]])
    assert state.models == names and state.grid is None  # the table is rebuilt when next shown
    state.grid = state.rebuild_grid()
    state.replace_model(names[1], names[1] + "-again", infos[names[1]])
    assert state.models[1] == names[1] + "-again" and state.base == names[1] + "-again" and state.grid is None
    state.remove_model(names[1] + "-again")
    assert state.models == [names[0], names[2]] and state.base is None and set(state.infos) == {names[0], names[2]}
