"""mergekit 0.0.2's ``input_model_parameters``: per-model values below an entry's and a slice's, above the global
ones; ``export`` writes them into the models' own parameters and the result merges to the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import folder_digest
from safetensors.torch import load_file

from tui_merge.cli import main

NAME0, NAME1 = "model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"


def merged(tmp_path: Path, text: str, name: str = "out") -> dict[str, torch.Tensor]:
    config = tmp_path / f"{name}.yaml"
    config.write_text(text)
    assert main(["run", str(config), str(tmp_path / name)]) == 0
    return {key: value.float() for key, value in load_file(tmp_path / name / "model.safetensors").items()}


def weights_of(folder: Path) -> dict[str, torch.Tensor]:
    return {key: value.float() for key, value in load_file(folder / "model.safetensors").items()}


def test_an_entrys_own_value_wins_and_the_others_come_from_input_model_parameters(
    tmp_path, llama_base, llama_finetune, llama_second_finetune
) -> None:
    a, b, c = llama_base, llama_finetune, llama_second_finetune
    text = (
        f"merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.7}}\n  - model: {b}\n"
        f"  - model: {c}\ninput_model_parameters:\n  {a}: {{weight: 0.2}}\n  {b}: {{weight: 0.6}}\n"
        "parameters: {weight: 0.1}\n"
    )
    out = merged(tmp_path, text)

    A, B, C = weights_of(a), weights_of(b), weights_of(c)
    expected = (0.7 * A[NAME0] + 0.6 * B[NAME0] + 0.1 * C[NAME0]) / (0.7 + 0.6 + 0.1)
    assert torch.allclose(out[NAME0], expected, atol=1e-6)


def test_in_slices_a_slices_value_outranks_them(tmp_path, llama_base, llama_finetune) -> None:
    a, b = llama_base, llama_finetune
    text = (
        "merge_method: linear\nslices:\n"
        f"  - sources: [{{model: {a}, layer_range: [0, 1]}}, {{model: {b}, layer_range: [0, 1]}}]\n"
        "    parameters: {weight: 0.5}\n"
        f"  - sources: [{{model: {a}, layer_range: [1, 2]}}, {{model: {b}, layer_range: [1, 2]}}]\n"
        f"input_model_parameters:\n  {a}: {{weight: 0.9}}\n  {b}: {{weight: 0.3}}\n"
    )
    out = merged(tmp_path, text)

    A, B = weights_of(a), weights_of(b)
    assert torch.allclose(out[NAME0], 0.5 * A[NAME0] + 0.5 * B[NAME0], atol=1e-6)
    assert torch.allclose(out[NAME1], (0.9 * A[NAME1] + 0.3 * B[NAME1]) / 1.2, atol=1e-6)


@pytest.mark.parametrize("mode", ["models", "slices"])
def test_export_writes_them_into_the_models_own_parameters_and_merges_the_same(
    tmp_path, capsys, llama_base, llama_finetune, mode
) -> None:
    a, b = llama_base, llama_finetune
    if mode == "models":
        body = f"models:\n  - model: {a}\n    parameters: {{weight: 0.7}}\n  - model: {b}\n"
    else:
        body = (
            f"slices:\n  - sources: [{{model: {a}, layer_range: [0, 1]}}, {{model: {b}, layer_range: [0, 1]}}]\n"
            "    parameters: {weight: 0.5}\n"
            f"  - sources: [{{model: {a}, layer_range: [1, 2]}}, {{model: {b}, layer_range: [1, 2]}}]\n"
        )
    original = tmp_path / "old.yaml"
    original.write_text(
        f"# from mergekit 0.0.2\nmerge_method: linear\n{body}input_model_parameters:\n  {a}: {{weight: 0.2}}\n"
        f"  {b}: {{weight: 0.6}}\ntui_merge: {{seed: 1}}\n"
    )

    assert main(["export", "--mergekit", str(original)]) == 0
    printed = capsys.readouterr()
    exported = yaml.safe_load(printed.out)
    assert "input_model_parameters" not in exported and "tui_merge" not in exported
    assert "comments are not kept" in printed.err
    if mode == "models":
        assert [entry["parameters"] for entry in exported["models"]] == [{"weight": 0.7}, {"weight": 0.6}]
    else:
        assert [[source.get("parameters") for source in s["sources"]] for s in exported["slices"]] == [
            [None, None],
            [{"weight": 0.2}, {"weight": 0.6}],
        ]
    (tmp_path / "new.yaml").write_text(printed.out)
    assert main(["run", str(original), str(tmp_path / "from-old")]) == 0
    assert main(["run", str(tmp_path / "new.yaml"), str(tmp_path / "from-new")]) == 0
    assert (
        folder_digest(tmp_path / "from-old")["model.safetensors"]
        == folder_digest(tmp_path / "from-new")["model.safetensors"]
    )


def test_a_model_the_config_does_not_merge_is_refused(tmp_path, capsys, llama_base, llama_finetune) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n"
        "input_model_parameters:\n  elsewhere/model: {weight: 0.5}\n"
    )

    assert main(["run", str(config), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "m.yaml:4: input_model_parameters.elsewhere/model: elsewhere/model is not one of the config's models" in err
