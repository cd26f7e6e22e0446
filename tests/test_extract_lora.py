"""``tui-merge extract-lora``: adapters checked against SVDs computed here, applied back with ``run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tui_merge.cli import main

Q_PROJ = "model.layers.1.self_attn.q_proj"


def delta_of(base: Path, tuned: Path, module: str) -> torch.Tensor:
    name = f"{module}.weight"
    return load_file(tuned / "model.safetensors")[name].double() - load_file(base / "model.safetensors")[name].double()


def extract(tuned: Path, base: Path, output: Path, *options: str) -> int:
    return main(["extract-lora", "--model", str(tuned), "--base", str(base), *options, str(output)])


def adapter(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    return json.loads((folder / "adapter_config.json").read_text()), load_file(folder / "adapter_model.safetensors")


def test_at_full_rank_the_adapter_applied_with_run_gives_back_the_fine_tune(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    assert (
        main(["extract-lora", "--model", str(llama_finetune), "--base", str(llama_base), str(tmp_path / "lora")]) == 0
    )
    recipe = tmp_path / "apply.yaml"
    recipe.write_text(f"merge_method: passthrough\nmodels: [{{model: {llama_base}+{tmp_path / 'lora'}}}]\n")

    assert main(["run", str(recipe), str(tmp_path / "again")]) == 0

    again, tuned = load_file(tmp_path / "again" / "model.safetensors"), load_file(llama_finetune / "model.safetensors")
    assert again.keys() == tuned.keys()
    for name, value in tuned.items():
        assert torch.allclose(again[name], value, rtol=1e-5, atol=1e-6), name
    settings, tensors = adapter(tmp_path / "lora")
    assert settings["peft_type"] == "LORA" and settings["lora_alpha"] == settings["r"]
    assert f"base_model.model.{Q_PROJ}.lora_A.weight" in tensors and "base_model.model.lm_head.weight" in tensors
    assert not (tmp_path / "lora.partial").exists()


def test_at_rank_r_the_error_is_the_tail_of_the_singular_values(capsys, tmp_path, llama_base, llama_finetune) -> None:
    assert main(["extract-lora", "--model", str(llama_finetune), "--base", str(llama_base), "--rank", "3",
                 "--dtype", "float32", str(tmp_path / "lora")]) == 0  # fmt: skip

    settings, tensors = adapter(tmp_path / "lora")
    a, b = tensors[f"base_model.model.{Q_PROJ}.lora_A.weight"], tensors[f"base_model.model.{Q_PROJ}.lora_B.weight"]
    delta = delta_of(llama_base, llama_finetune, Q_PROJ)
    singular = torch.linalg.svdvals(delta)
    assert a.shape[0] == b.shape[1] == 3 and settings["r"] == 3
    error = torch.linalg.matrix_norm(delta - b.double() @ a.double())
    assert float(error) == pytest.approx(float(singular[3:].square().sum().sqrt()), rel=1e-4)
    captured = float(singular[:3].square().sum().sqrt() / singular.square().sum().sqrt())
    line = next(line for line in capsys.readouterr().err.splitlines() if line.split()[1:2] == [Q_PROJ])
    assert f"captures {captured:7.2%}" in line and "rank    3" in line


def test_a_relative_threshold_picks_each_modules_rank_and_the_config_says_which(
    tmp_path, llama_base, llama_finetune
) -> None:
    assert main(["extract-lora", "--model", str(llama_finetune), "--base", str(llama_base), "--relative-threshold",
                 "0.5", str(tmp_path / "lora")]) == 0  # fmt: skip

    settings, tensors = adapter(tmp_path / "lora")
    ranks = {}
    for key, value in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            singular = torch.linalg.svdvals(delta_of(llama_base, llama_finetune, module).float())
            assert value.shape[0] == int((singular >= 0.5 * singular[0]).sum()), module
            ranks[module] = value.shape[0]
    assert settings["r"] == max(ranks.values())
    assert settings["rank_pattern"] == {module: rank for module, rank in ranks.items() if rank != settings["r"]}
    assert settings["alpha_pattern"] == settings["rank_pattern"]


def test_include_and_exclude_pick_modules_by_name(capsys, tmp_path, llama_base, llama_finetune) -> None:
    assert main(["extract-lora", "--model", str(llama_finetune), "--base", str(llama_base), "-i", "self_attn",
                 "-e", "v_proj", "--skip-undecomposable", str(tmp_path / "lora")]) == 0  # fmt: skip

    _, tensors = adapter(tmp_path / "lora")
    modules = {key.removeprefix("base_model.model.").rsplit(".", 2)[0] for key in tensors if ".lora_" in key}
    assert modules and all("self_attn" in module and "v_proj" not in module for module in modules)
    assert not any("layernorm" in key for key in tensors)  # not matrices, and skipped as asked
    assert "left out (matched by --exclude-regex)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--rank", "0"], "--max-rank 0: the rank must be a whole number of at least 1."),
        (["--relative-threshold", "2"], "--relative-threshold 2.0: give a fraction"),
        (["-i", "("], "--include-regex '(' is not a regular expression"),
    ],
)
def test_bad_options_are_refused_with_a_sentence_and_nothing_is_written(
    capsys, tmp_path, llama_base, llama_finetune, extra, expected
) -> None:
    code = main(["extract-lora", "--model", str(llama_finetune), "--base", str(llama_base), *extra,
                 str(tmp_path / "lora")])  # fmt: skip

    assert code == 2 and expected in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_unrelated_base_a_model_against_itself_and_a_full_folder_are_refused(
    capsys, tmp_path, llama_base, llama_finetune, llama_unrelated
) -> None:
    def extract(base: Path, output: Path) -> str:
        assert main(["extract-lora", "--model", str(llama_finetune), "--base", str(base), str(output)]) == 2
        return capsys.readouterr().err

    assert "do not share a base" in extract(llama_unrelated, tmp_path / "a")
    assert "there is nothing to extract" in extract(llama_finetune, tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    assert "already exists and is not empty" in extract(llama_base, tmp_path / "c")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["c"]
    assert [path.name for path in (tmp_path / "c").iterdir()] == ["notes.txt"]


def test_peft_loads_the_adapter(tmp_path, llama_base, llama_finetune) -> None:
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    assert (
        main(["extract-lora", "--model", str(llama_finetune), "--base", str(llama_base), str(tmp_path / "lora")]) == 0
    )
    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(llama_base), tmp_path / "lora")
    merged = model.merge_and_unload().state_dict()
    tuned = load_file(llama_finetune / "model.safetensors")
    assert torch.allclose(merged[f"{Q_PROJ}.weight"], tuned[f"{Q_PROJ}.weight"], atol=1e-5)


def test_a_stop_signal_midway_keeps_the_finished_tensors_and_resume_gives_the_same_adapter(
    capsys, tmp_path, monkeypatch, llama_base, llama_finetune
) -> None:
    import os
    import signal

    from tui_merge.tools import extract_lora as tool

    assert extract(llama_finetune, llama_base, tmp_path / "straight", "--rank", "3") == 0
    real, calls = tool._extract_one, []

    def signalled(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(tool, "_extract_one", signalled)
    assert extract(llama_finetune, llama_base, tmp_path / "lora", "--rank", "3") == 130
    said = capsys.readouterr().err
    assert "are kept in" in said and "--resume" in said and not (tmp_path / "lora").exists()
    monkeypatch.setattr(tool, "_extract_one", real)

    assert extract(llama_finetune, llama_base, tmp_path / "lora", "--rank", "3", "--resume") == 0

    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (tmp_path / "lora" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
    assert sorted(path.name for path in tmp_path.iterdir()) == ["lora", "straight"]


def test_options_that_leave_no_linear_module_are_refused(capsys, tmp_path, llama_base, llama_finetune) -> None:
    assert extract(llama_finetune, llama_base, tmp_path / "lora", "-i", "no_such_module") == 2

    assert "there is nothing to extract as LoRA" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
