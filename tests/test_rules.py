"""The registry's two input rules, and every front end asking them rather than a copy."""

from __future__ import annotations

import math

import pytest
import yaml
from test_plain_wizard import answer, method_number

from tui_merge.cli import main
from tui_merge.config import parse_config
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import get_method
from tui_merge.tui.fields import InRange


@pytest.mark.parametrize(
    ("method", "count", "has_base", "accepted"),
    [
        ("nuslerp", 2, False, True),  # two models, no base: interpolate the models
        ("nuslerp", 2, True, False),  # one of the two is the base: one model left
        ("nuslerp", 3, True, True),  # two task vectors against the base
        ("nuslerp", 3, False, False),
        ("slerp", 2, True, True),
        ("slerp", 2, False, False),  # slerp needs its base
        ("slerp", 3, True, False),
        ("linear", 1, False, True),
        ("linear", 3, True, True),  # linear ignores a base: it merges all three
        ("ties", 1, True, False),
        ("ties", 4, True, True),
        ("model_stock", 2, True, False),  # at least two fine-tunes besides the base
    ],
)
def test_accepts_counts_models_the_way_the_method_uses_the_base(method, count, has_base, accepted) -> None:
    assert get_method(method).accepts(count, has_base) is accepted


@pytest.mark.parametrize(
    ("method", "name", "value", "phrase"),
    [
        ("slerp", "t", 1.5, "must be between 0 and 1, got 1.5"),
        ("slerp", "t", -0.1, "must be between 0 and 1, got -0.1"),
        ("slerp", "t", math.nan, "must be a finite number between 0 and 1, got nan"),
        ("linear", "weight", math.inf, "must be a finite number, got inf"),
        ("linear", "weight", -math.inf, "must be a finite number, got -inf"),
        ("slerp", "t", True, "must be a number between 0 and 1, got True"),
        ("slerp", "t", "half", "must be a number between 0 and 1, got 'half'"),
        ("linear", "weight", "", "must be a number, got ''"),  # unbounded: no range after "a number"
        ("karcher", "max_iter", 2.5, "must be a whole number at least 1, got 2.5"),
        ("karcher", "max_iter", 0, "must be at least 1, got 0"),
        ("linear", "normalize", 1, "must be true or false, got 1"),
    ],
)
def test_problem_names_what_is_wrong(method, name, value, phrase) -> None:
    assert get_method(method).param(name).problem(value) == phrase


@pytest.mark.parametrize(
    ("method", "name", "value"),
    [("slerp", "t", 0), ("slerp", "t", 1.0), ("karcher", "max_iter", 3), ("linear", "weight", -2.0),
     ("linear", "normalize", False)],
)  # fmt: skip
def test_problem_is_none_for_good_values(method, name, value) -> None:
    assert get_method(method).param(name).problem(value) is None


def test_a_config_refuses_nan_and_infinity() -> None:
    models = "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}]\n"
    for text in (".nan", ".inf", "-.inf", "[0, .nan]"):
        with pytest.raises(BadInputError, match="must be a finite number"):
            parse_config(f"{models}parameters: {{t: {text}}}\n", "m.yaml")


@pytest.mark.parametrize("typed", ["nan", "inf", "-inf", "1e999"])
def test_the_wizard_form_refuses_nan_and_infinity(typed: str) -> None:
    assert not InRange(get_method("linear").param("weight")).validate(typed).is_valid


def test_a_config_and_the_form_say_the_same_about_a_range() -> None:
    density = get_method("ties").param("density")
    with pytest.raises(BadInputError) as refused:
        parse_config(
            "merge_method: ties\nbase_model: a\nmodels: [{model: a}, {model: b, parameters: {density: 1.5}}]\n",
            "m.yaml",
        )

    form = InRange(density).validate("1.5").failure_descriptions[0]
    assert form.removeprefix("density ") in refused.value.message


def test_the_plain_wizard_offers_nuslerp_for_three_models_and_asks_for_a_base(
    monkeypatch, capsys, tmp_path, factory, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    models = [str(llama_base), str(llama_finetune), str(factory.llama("llama-finetune-2", finetune_seed=6))]
    answer(monkeypatch, "")
    assert main(["plain", *models, "--print-yaml"]) == 2
    nuslerp = method_number(capsys.readouterr().err, "nuslerp")
    answer(monkeypatch, "", nuslerp, "2", *[""] * 12)

    assert main(["plain", *models, "--print-yaml"]) == 0

    asked = capsys.readouterr()
    assert "Base model" in asked.err and "no base" not in asked.err  # without a base three models are too many
    config = yaml.safe_load(asked.out)
    assert config["merge_method"] == "nuslerp" and config["base_model"] == str(llama_finetune)


def test_the_plain_wizard_merges_two_models_with_nuslerp_without_a_base(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    models = [str(llama_base), str(llama_finetune)]
    answer(monkeypatch, "")
    assert main(["plain", *models, "--print-yaml"]) == 2
    nuslerp = method_number(capsys.readouterr().err, "nuslerp")
    answer(monkeypatch, "", nuslerp, *[""] * 12)

    assert main(["plain", *models, "--print-yaml"]) == 0

    asked = capsys.readouterr()
    assert "Base model" not in asked.err  # a base would leave one model: there is nothing to ask
    assert "base_model" not in yaml.safe_load(asked.out)
