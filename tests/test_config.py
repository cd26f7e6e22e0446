"""The config dialect: gradients, filters, precedence, and errors that name file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from tui_merge.config import parse_config
from tui_merge.config.parameters import TensorPlace, evaluate, interpolate, layer_position, resolve
from tui_merge.config.schema import parse_size
from tui_merge.errors import BadInputError


def mergekit_gradient(anchors: list[float], idx: int, layers: int) -> float:
    """The formula as the issue states it, written out independently."""
    t = idx / (layers - 1)
    s = t * (len(anchors) - 1)
    i = int(s // 1)
    return (1 - (s - i)) * anchors[i] + (s - i) * anchors[min(i + 1, len(anchors) - 1)]


@pytest.mark.parametrize("anchors", [[0.0, 1.0], [0.2, 0.9, 0.1], [1, 0.75, 0.5, 0.25, 0, 0, 0, 0, 0.0, 0.5, 1]])
def test_gradients_follow_mergekits_formula(anchors: list[float]) -> None:
    layers = 32
    for idx in range(layers):
        assert interpolate(anchors, layer_position(idx, layers)) == pytest.approx(
            mergekit_gradient(anchors, idx, layers)
        )


def test_one_anchor_per_layer_gives_each_layer_its_anchor() -> None:
    anchors = [0.1 * i for i in range(8)]

    assert [interpolate(anchors, layer_position(i, 8)) for i in range(8)] == pytest.approx(anchors)


def test_tensors_outside_the_layers_sit_at_t_zero() -> None:
    assert layer_position(None, 32) == 0.0
    assert evaluate([0.3, 0.9], TensorPlace("model.embed_tokens.weight")) == 0.3


def test_filters_match_by_substring_and_the_first_wins() -> None:
    value = [{"filter": "self_attn", "value": 0.1}, {"filter": "attn", "value": 0.2}, {"value": [0.5, 1.0]}]

    assert evaluate(value, TensorPlace("model.layers.3.self_attn.q_proj.weight", 0.5)) == 0.1
    assert evaluate(value, TensorPlace("transformer.h.0.attn.c_attn.weight", 0.0)) == 0.2
    assert evaluate(value, TensorPlace("model.layers.3.mlp.up_proj.weight", 1.0)) == 1.0


def test_precedence_is_source_then_slice_then_model_then_global() -> None:
    place = TensorPlace("model.layers.0.mlp.up_proj.weight")
    source, slice_level, model, global_level = {"w": 1}, {"w": 2}, {"w": 3}, {"w": 4}

    assert resolve("w", [source, slice_level, model, global_level], place, 0) == 1
    assert resolve("w", [{}, slice_level, model, global_level], place, 0) == 2
    assert resolve("w", [{}, {}, model, global_level], place, 0) == 3
    assert resolve("w", [{}, {}, {}, global_level], place, 0) == 4
    assert resolve("w", [{}, {}, {}, {}], place, 0) == 0


def test_conditions_that_match_nothing_fall_through_to_the_next_level() -> None:
    place = TensorPlace("model.layers.0.mlp.up_proj.weight")

    assert resolve("w", [{"w": [{"filter": "attn", "value": 9}]}, {"w": 5}], place, 0) == 5


@pytest.mark.parametrize(
    ("text", "size"),
    [("2GB", 2_000_000_000), ("2000MiB", 2000 * 1024**2), ("5G", 5 * 10**9), (123, 123), ("1.5 KiB", 1536)],
)
def test_shard_sizes(text, size: int) -> None:
    assert parse_size(text) == size


def config(text: str):
    return parse_config(textwrap.dedent(text), "merge.yaml")


def error_of(text: str) -> str:
    with pytest.raises(BadInputError) as caught:
        config(text)
    return caught.value.message


def test_a_mergekit_recipe_parses_with_filters_gradients_and_int8_mask() -> None:
    loaded = config(
        """\
        models:
          - model: base
          - model: a
            parameters:
              density: [1, 0.7, 0.1]
              weight: 1.0
          - model: b
            parameters:
              density: 0.33
              weight:
                - filter: mlp
                  value: 0.5
                - value: 0
        merge_method: ties
        base_model: base
        parameters:
          normalize: true
          int8_mask: true
        dtype: bf16
        """
    )

    assert loaded.config.dtype == "bfloat16"
    assert loaded.config.models[2].parameters["weight"][0] == {"filter": "mlp", "value": 0.5}
    assert loaded.config.tui_merge.seed == 0


def test_out_of_range_value_names_file_line_and_key() -> None:
    message = error_of(
        """\
        merge_method: ties
        base_model: a
        models:
          - model: a
          - model: b
            parameters:
              density: 1.5
        """
    )

    assert message == "merge.yaml:7: models[1].parameters.density must be between 0 and 1, got 1.5."


def test_each_gradient_anchor_is_range_checked() -> None:
    message = error_of(
        """\
        merge_method: slerp
        base_model: a
        models: [{model: a}, {model: b}]
        parameters:
          t: [0, 0.5,
              1.2]
        """
    )

    assert message == "merge.yaml:6: parameters.t[2] must be between 0 and 1, got 1.2."


def test_misspelt_method_suggests_the_nearest() -> None:
    assert error_of("merge_method: dare-ties\nmodels: [{model: a}]\n") == (
        "merge.yaml:1: Unknown merge method 'dare-ties'; did you mean 'dare_ties'?"
    )


def test_unknown_parameter_suggests_the_nearest() -> None:
    message = error_of(
        """\
        merge_method: ties
        base_model: a
        models:
          - model: a
          - model: b
            parameters: {weight: 1, desnity: 0.5}
        """
    )

    assert (
        message
        == "merge.yaml:6: models[1].parameters.desnity: ties has no parameter 'desnity'; did you mean 'density'?"
    )


def test_unknown_key_suggests_the_nearest() -> None:
    assert error_of("merge_method: linear\nmodles: [{model: a}]\n") == (
        "merge.yaml:2: unknown key modles; did you mean 'models'?"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("merge_methd: linear\nmodels: [{model: a}]\n",
         "merge.yaml:1: unknown key merge_methd; did you mean 'merge_method', which is missing?"),
        ("merge_method: linear\nmodels:\n  - modle: a\n",
         "merge.yaml:3: unknown key models[0].modle; did you mean 'model', which is missing?"),
    ],
)  # fmt: skip
def test_a_misspelt_required_key_is_named_with_the_missing_one(text: str, expected: str) -> None:
    assert error_of(text) == expected


def test_a_global_parameter_given_per_model_is_explained() -> None:
    message = error_of(
        """\
        merge_method: slerp
        base_model: a
        models:
          - model: a
          - model: b
            parameters: {t: 0.5}
        """
    )

    assert "merge.yaml:6: models[1].parameters.t: t is a global parameter of slerp" in message


def test_a_required_parameter_must_be_given() -> None:
    message = error_of("merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}]\n")

    assert message.startswith("merge.yaml:1: slerp needs parameter t")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("merge_method: ties\nmodels: [{model: a}, {model: b}]\n", "ties merges task vectors against a base model"),
        (
            "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}, {model: c}]\nparameters: {t: 0.5}\n",
            "slerp takes exactly 1 model besides the base, got 2 (b, c)",
        ),
        ("merge_method: linear\n", "give either models, slices or modules"),
        ("merge_method: linear\nmodels: [{model: a}]\ndtype: float8\n", "merge.yaml:3: dtype: unknown dtype 'float8'"),
        (
            "merge_method: linear\nmodels: [{model: a}]\ntokenizer_source: 'model:'\n",
            "must be base, union or a model (folder or hub id), got 'model:'",
        ),
        (
            "merge_method: linear\nmodels: [{model: a}]\ntokenizer_source: base\ntokenizer: {source: union}\n",
            "give tokenizer_source or a tokenizer: block, not both",
        ),
        (
            "merge_method: linear\nmodels: [{model: a}]\ntokenizer: {pad_to_multiple_of: 0}\n",
            "pad_to_multiple_of must be a whole number from 1 to 1048576, got 0",
        ),
        (
            "merge_method: linear\nmodels: [{model: a}]\n"
            "tokenizer: {tokens: {x: {source: {kind: model_token, model: a}}}}\n",
            "give exactly one of token and token_id",
        ),
        (
            "merge_method: linear\nmodels: [{model: a}]\ntokenizer: {tokens: {x: {source: {kind: nothing}}}}\n",
            "source must be a model, {kind: zero} or {kind: model_token, model: M, token: T (or token_id: N)}, got "
            "kind 'nothing'",
        ),
        ("merge_method: linear\nmodels: [{model: a}]\ntui_merge: {shard_size: lots}\n", "is not a size"),
        ("merge_method: linear\nmodels: [{model: a}]\ntui_merge: {device: gpu}\n", "device must be auto, cpu, cuda"),
        ("merge_method: linear\nmodels: [{model: a, parameters: {normalize: 1}}]\n", "normalize is a global"),
        ("merge_method: linear\nmodels: [{model: a}]\nparameters: {normalize: 1}\n", "must be true or false"),
        ("merge_method: linear\nmodels:\n  - model: a\n  bad indent\n", "merge.yaml:4: this is not valid YAML"),
        ("- just\n- a list\n", "a merge config is a YAML mapping"),
        (
            "merge_method: passthrough\nslices:\n  - sources:\n      - {model: a, layer_range: [4, 2]}\n",
            "merge.yaml:4: slices[0].sources[0].layer_range: layer_range must be [start, end)",
        ),
    ],
)
def test_bad_configs_are_one_clear_sentence(text: str, expected: str) -> None:
    message = error_of(text)

    assert expected in message
    assert message.startswith("merge.yaml:")
    assert "\n" not in message
