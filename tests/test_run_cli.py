"""run, methods, template and export as a user drives them from a shell."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from tui_merge.cli import main
from tui_merge.methods.registry import METHODS


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_run_merges_with_timestamped_progress_when_not_on_a_terminal(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    recipe = write(
        tmp_path / "merge.yaml",
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n",
    )

    status = main(["run", str(recipe), str(tmp_path / "out")])

    out, err = capsys.readouterr()
    assert status == 0
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d merging 21 tensors", err, re.M)
    assert re.search(r"100% 21/21 tensors", err)
    assert "wrote model.safetensors" in err
    assert out.startswith("Merged 21 tensors") and "tui_merge_config.yaml" in out
    assert (tmp_path / "out" / "tui_merge_config.yaml").read_text() == recipe.read_text()


def test_dash_o_and_dry_run(capsys, tmp_path, llama_base, llama_finetune) -> None:
    recipe = write(
        tmp_path / "merge.yaml",
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n",
    )

    assert main(["run", str(recipe), "-o", str(tmp_path / "planned"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Plan: linear of 2 models into float32" in out and "peak memory" in out and "free disk" in out
    assert not (tmp_path / "planned").exists()
    assert main(["run", str(recipe), "-o", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "model.safetensors").is_file()


def test_run_errors_are_one_line_with_exit_two(capsys, tmp_path, llama_base) -> None:
    recipe = write(tmp_path / "merge.yaml", f"merge_method: ties\nmodels: [{{model: {llama_base}}}]\n")

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == f"tui-merge: error: {recipe}:1: ties merges task vectors against a base model; set base_model.\n"
    assert main(["run", str(tmp_path / "missing.yaml"), str(tmp_path / "out")]) == 2
    assert "missing.yaml does not exist" in capsys.readouterr().err
    assert main(["run", str(recipe), str(tmp_path / "a"), "-o", str(tmp_path / "b")]) == 2
    assert "Two outputs given" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_mergekit_recipe_runs_unchanged(capsys, tmp_path, llama_base, llama_finetune, llama_second_finetune) -> None:
    recipe = write(
        tmp_path / "mergekit_config.yml",
        f"""models:
  - model: {llama_base}
    # no parameters necessary for base model
  - model: {llama_finetune}
    parameters:
      density: [1, 0.7, 0.1] # density gradient
      weight: 1.0
  - model: {llama_second_finetune}
    parameters:
      density: 0.33
      weight:
        - filter: mlp
          value: 0.5
        - value: 0
merge_method: dare_ties
base_model: {llama_base}
parameters:
  normalize: true
  int8_mask: true
dtype: bfloat16
""",
    )

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    merged = load_file(tmp_path / "out" / "model.safetensors")
    assert merged["model.layers.0.mlp.up_proj.weight"].dtype.is_floating_point


def test_template_edit_run(capsys, tmp_path, llama_base, llama_second_finetune) -> None:
    llama_unrelated = llama_second_finetune  # any model that may be merged with the base
    template = tmp_path / "merge.yaml"

    assert main(["template", str(llama_base), str(llama_unrelated), "--method", "slerp", "-o", str(template)]) == 0
    text = template.read_text()
    assert "        - 0.50  # layer 0\n        - 0.50  # layer 1\n" in text
    assert "- filter: model.embed_tokens  # embeddings" in text and "- filter: lm_head  # output head" in text
    edited = text.replace("- 0.50  # layer 1", "- 1.00  # layer 1")
    template.write_text(edited)
    assert main(["run", str(template), str(tmp_path / "out")]) == 0

    merged = load_file(tmp_path / "out" / "model.safetensors")
    other = load_file(llama_unrelated / "model.safetensors")
    name = "model.layers.1.self_attn.k_proj.weight"
    np.testing.assert_allclose(merged[name].numpy(), other[name].numpy(), rtol=1e-5, atol=1e-6)
    assert main(["template", str(llama_base), str(llama_unrelated), "-o", str(template)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_every_method_runs_from_its_template(tmp_path, llama_base, llama_finetune, llama_second_finetune) -> None:
    from transformers import AutoModelForCausalLM

    for method in METHODS:
        models = [llama_base, llama_finetune, llama_second_finetune]
        count = (method.max_models or 2) + (method.base != "none")
        paths = [str(path) for path in models[:count]]
        recipe = tmp_path / f"{method.name}.yaml"
        assert main(["template", *paths, "--method", method.name, "-o", str(recipe)]) == 0, method.name
        assert main(["run", str(recipe), str(tmp_path / method.name)]) == 0, method.name
        assert AutoModelForCausalLM.from_pretrained(tmp_path / method.name).config.num_hidden_layers == 2


def test_export_strips_our_block_and_keeps_comments(capsys, tmp_path) -> None:
    recipe = write(
        tmp_path / "merge.yaml",
        "# my merge\nmerge_method: linear\ntui_merge:\n  seed: 3\n  shard_size: 2GB\nmodels:\n  - model: a  # first\n",
    )

    assert main(["export", "--mergekit", str(recipe)]) == 0
    assert capsys.readouterr().out == "# my merge\nmerge_method: linear\nmodels:\n  - model: a  # first\n"
    assert main(["export", str(recipe)]) == 0  # mergekit's is the only dialect, so the flag is optional
    assert capsys.readouterr().out == "# my merge\nmerge_method: linear\nmodels:\n  - model: a  # first\n"


def test_methods_lists_and_describes(capsys) -> None:
    assert main(["methods"]) == 0
    listing = capsys.readouterr().out
    assert all(method.name in listing for method in METHODS)
    assert main(["methods", "ties"]) == 0
    detail = capsys.readouterr().out
    assert re.search(r"density\s+per model\s+1; new configs 0.5\s+between 0 and 1", detail)
    assert main(["methods", "tie"]) == 2
    assert "did you mean 'ties'" in capsys.readouterr().err


def test_methods_and_help_are_fast_paths_without_torch() -> None:
    probe = (
        "import sys\nfrom tui_merge.cli import main\nmain(['methods'])\nmain(['methods', 'della'])\n"
        "print('heavy=' + ','.join(m for m in ('torch', 'transformers', 'textual') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.splitlines()[-1] == "heavy="


def test_on_a_terminal_run_draws_a_progress_bar(capsys, monkeypatch, tmp_path, llama_base, llama_finetune) -> None:
    recipe = write(
        tmp_path / "merge.yaml",
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n",
    )
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0

    err = capsys.readouterr().err
    assert "merging" in err and "21/21" in err and "━" in err
    assert not re.search(r"^\d{4}-\d\d-\d\d ", err, re.M)
