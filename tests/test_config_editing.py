"""Values of a config's text changed in place: every other line, comments included, stays as written."""

from __future__ import annotations

import yaml

from tui_merge.config.editing import set_values

TEMPLATE = """\
# my template
merge_method: slerp
base_model: a   # the base
models:
  - model: a
  - model: b
    parameters:
      weight: 1.0  # b's weight
parameters:
  t:          # per layer
    - filter: self_attn   # attention
      value: [0, 0.5, 1]
    - value: 0.5   # the rest
  # after t
dtype: bfloat16
"""


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    gone = [line for line in before.splitlines() if line not in after.splitlines()]
    new = [line for line in after.splitlines() if line not in before.splitlines()]
    return gone, new


def test_a_scalar_is_replaced_on_its_own_line_and_its_comment_stays() -> None:
    edited = set_values(TEMPLATE, {("models", 1, "parameters", "weight"): 0.25})

    gone, new = changed_lines(TEMPLATE, edited)
    assert (gone, new) == (["      weight: 1.0  # b's weight"], ["      weight: 0.25  # b's weight"])


def test_a_block_value_is_replaced_whole_by_one_flow_line() -> None:
    edited = set_values(TEMPLATE, {("parameters", "t"): [0, 1]})

    assert yaml.safe_load(edited)["parameters"]["t"] == [0, 1]
    assert "    - filter: self_attn   # attention" not in edited and "# the rest" not in edited
    assert "  t:          # per layer\n    [0, 1]\n  # after t\n" in edited


def test_a_block_value_without_a_comment_on_its_key_line_is_replaced_on_that_line() -> None:
    text = TEMPLATE.replace("  t:          # per layer\n", "  t:\n")
    edited = set_values(text, {("parameters", "t"): 0.25})

    assert yaml.safe_load(edited)["parameters"]["t"] == 0.25
    assert "  t: 0.25\n  # after t\n" in edited


def test_a_missing_key_is_added_beside_its_siblings_and_a_missing_mapping_in_flow_style() -> None:
    edited = set_values(TEMPLATE, {("parameters", "lambda"): 2, ("models", 0, "parameters", "weight"): 0.5})

    data = yaml.safe_load(edited)
    assert data["parameters"]["lambda"] == 2 and data["models"][0] == {"model": "a", "parameters": {"weight": 0.5}}
    assert changed_lines(TEMPLATE, edited) == ([], ["    parameters: {weight: 0.5}", "  lambda: 2"])


def test_a_string_that_reads_as_another_type_is_quoted_and_a_flow_mapping_gets_no_new_key() -> None:
    edited = set_values(TEMPLATE, {("dtype",): "yes"})
    assert yaml.safe_load(edited)["dtype"] == "yes"

    assert set_values("models: [{model: a}]\n", {("models", 0, "parameters", "weight"): 1}) is None
