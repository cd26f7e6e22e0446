"""A recipe's hub ids pinned to commits, and mergekit's long form of a model reference."""

from __future__ import annotations

from types import SimpleNamespace

from tui_merge.config.loading import parse_config
from tui_merge.config.pinning import pinned_recipe

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def hub_model(argument: str, commit: str | None) -> SimpleNamespace:
    return SimpleNamespace(source=SimpleNamespace(argument=argument, commit=commit))


def test_each_hub_id_is_pinned_where_it_stands_as_a_value_and_the_rest_is_kept() -> None:
    text = """\
# a recipe
base_model: org/a  # the base
models:
  - model: "org/a"
  - model: org/b@v1
  - model: org/ab
  - model: ./org/a
slices:
  - sources: [{model: org/a, layer_range: [0, 2]}, {model: 'org/b@v1', layer_range: [0, 2]}]
tokenizer_source: org/a
"""
    models = {
        "org/a": hub_model("org/a", COMMIT_A),
        "org/b@v1": hub_model("org/b@v1", COMMIT_B),
        "org/ab": hub_model("org/ab", None),
        "./org/a": hub_model("./org/a", None),
    }

    assert (
        pinned_recipe(text, models)
        == f"""\
# a recipe
base_model: org/a@{COMMIT_A}  # the base
models:
  - model: "org/a@{COMMIT_A}"
  - model: org/b@{COMMIT_B}
  - model: org/ab
  - model: ./org/a
slices:
  - sources: [{{model: org/a@{COMMIT_A}, layer_range: [0, 2]}}, {{model: 'org/b@{COMMIT_B}', layer_range: [0, 2]}}]
tokenizer_source: org/a@{COMMIT_A}
"""
    )


def test_an_id_already_at_its_commit_is_left_as_written() -> None:
    text = f"base_model: org/a@{COMMIT_A}\n"

    assert pinned_recipe(text, {f"org/a@{COMMIT_A}": hub_model(f"org/a@{COMMIT_A}", COMMIT_A)}) == text


def test_mergekit_s_long_form_of_a_model_reads_as_its_short_text() -> None:
    text = """\
merge_method: linear
base_model:
  model: {path: org/a, revision: v1}
models:
  - model: {model: {path: org/a, revision: v1}}
    parameters: {weight: 1}
  - model: {path: org/b}
    parameters: {weight: 1}
  - model: {model: {path: org/c}, lora: {path: me/lora}}
    parameters: {weight: 1}
"""
    config = parse_config(text, "merge.yaml").config

    assert config.base_model == "org/a@v1"
    assert [entry.model for entry in config.models] == ["org/a@v1", "org/b", "org/c+me/lora"]
