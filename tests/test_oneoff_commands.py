"""blockmerge, circuit and import-recipe: flags to config field by field, merges equal to their config's run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import folder_digest
from safetensors.torch import load_file

from model_factory import ModelFactory
from tui_merge.cli import main
from tui_merge.cli.import_cmd import fenced_blocks, find_recipe
from tui_merge.samples import SampleShape

GRADIENT = [1.0, 0.5, 0.0]


@pytest.fixture(scope="module")
def five_layers(factory: ModelFactory) -> tuple[Path, Path]:
    """Model 1 (with a tokenizer) and model 2 (a fine-tune of it, without one), five layers each."""
    shape = SampleShape(layers=5)
    return (
        factory.llama("llama-5-layers", shape=shape, tokenizer=True),
        factory.llama("llama-5-layers-tuned", finetune_seed=9, shape=shape),
    )


def printed_config(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    out = capsys.readouterr().out
    return yaml.safe_load(out)


def weights(folder: Path) -> dict[str, np.ndarray]:
    return {name: tensor.float().numpy() for name, tensor in load_file(folder / "model.safetensors").items()}


def expected_shares(gradient: list[float], depth: int) -> np.ndarray:
    """Anchors spread evenly over the depth, first layer to last, linearly interpolated."""
    return np.interp(np.linspace(0, len(gradient) - 1, depth), np.arange(len(gradient)), gradient)


def by_filter(weight_rows: list[dict]) -> dict[str, float | list[float]]:
    return {row.get("filter", "layers"): row["value"] for row in weight_rows}


# --- blockmerge -----------------------------------------------------------------------------


def blockmerge_args(first: Path, second: Path, *extra: str, gradient: str = "[1.0, 0.5, 0.0]") -> list[str]:
    return ["blockmerge", "--model_path1", str(first), "--model_path2", str(second), "--gradient_values", gradient,
            *extra]  # fmt: skip


@pytest.mark.parametrize("mode", ["both", "--layer_only", "--no_layers"])
def test_blockmerge_flags_become_a_linear_config_field_by_field(capsys, five_layers, mode) -> None:
    first, second = five_layers
    extra = [] if mode == "both" else [mode]
    config = printed_config(
        capsys, blockmerge_args(first, second, "--max_shard_size", "2000MiB", "--print-yaml", *extra)
    )

    assert config["merge_method"] == "linear"
    assert [entry["model"] for entry in config["models"]] == [str(first), str(second)]
    assert config["tokenizer_source"] == f"model:{first}"
    assert config["tui_merge"] == {"shard_size": "2000MiB", "vocab": "truncate"}  # rows by position
    assert config["dtype"] == "float32"
    one, two = (by_filter(entry["parameters"]["weight"]) for entry in config["models"])
    layers = np.zeros(5) if mode == "--no_layers" else expected_shares(GRADIENT, 5)
    np.testing.assert_allclose(two["layers"], layers, atol=1e-4)
    np.testing.assert_allclose(one["layers"], 1 - layers, atol=1e-4)
    blended = mode != "--layer_only"
    assert two["model.embed_tokens"] == (1.0 if blended else 0.0)  # before the first layer: the first value
    assert two["model.norm"] == two["lm_head"] == 0.0  # after the last layer: the last value
    assert one["model.embed_tokens"] == (0.0 if blended else 1.0) and one["model.norm"] == one["lm_head"] == 1.0


def test_blockmerge_blends_each_layer_by_its_share_and_equals_the_run_of_its_config(
    capsys, tmp_path, five_layers
) -> None:
    first, second = five_layers
    out = tmp_path / "out"
    assert main(blockmerge_args(first, second, "--output_model_path", str(out), gradient="[0.0, 1.0]")) == 0
    replay = tmp_path / "replay"
    assert main(["run", str(out / "tui_merge_config.yaml"), str(replay)]) == 0

    assert folder_digest(replay) == folder_digest(out)
    merged, one, two = weights(out), weights(first), weights(second)
    shares = expected_shares([0.0, 1.0], 5)
    for layer, share in enumerate(shares):
        for name in (f"model.layers.{layer}.self_attn.q_proj.weight", f"model.layers.{layer}.mlp.down_proj.weight"):
            np.testing.assert_allclose(merged[name], (1 - share) * one[name] + share * two[name], atol=1e-6)
    np.testing.assert_allclose(merged["model.embed_tokens.weight"], one["model.embed_tokens.weight"], atol=1e-6)
    np.testing.assert_allclose(merged["lm_head.weight"], two["lm_head.weight"], atol=1e-6)
    assert (out / "tokenizer.json").read_bytes() == (first / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("order", ["model 2 larger", "model 2 smaller"])
def test_blockmerge_keeps_model_1s_vocabulary_with_a_warning(
    capsys, tmp_path, llama_base, llama_vocab_plus, order
) -> None:
    first, second = (llama_base, llama_vocab_plus) if order == "model 2 larger" else (llama_vocab_plus, llama_base)
    out = tmp_path / "out"

    assert main(blockmerge_args(first, second, "--output_model_path", str(out), gradient="[0.5]")) == 0

    err = capsys.readouterr().err
    rows = weights(first)["model.embed_tokens.weight"].shape[0]
    assert f"the output keeps model 1's {rows} rows as BlockMerge did" in err
    assert weights(out)["model.embed_tokens.weight"].shape[0] == rows
    strategy = yaml.safe_load((out / "tui_merge_config.yaml").read_text())["tui_merge"]["vocab"]
    assert strategy == ("truncate" if order == "model 2 larger" else "pad")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gradient_values", "[1.5, 0]"], "must be a list of numbers between 0 and 1"),
        (["--gradient_values", "[]"], "must be a list of numbers between 0 and 1"),
        (["--gradient_values", "one half"], "must be a list of numbers between 0 and 1"),
        (["--gradient_values", "[1]", "--max_shard_size", "lots"], "--max_shard_size: 'lots' is not a size"),
        (["--gradient_values", "[1]"], "No output folder given"),
    ],
)
def test_blockmerge_bad_values_exit_2_with_one_sentence(capsys, llama_base, llama_finetune, argv, message) -> None:
    status = main(["blockmerge", "--model_path1", str(llama_base), "--model_path2", str(llama_finetune), *argv])

    assert status == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--model_path2", "b", "--gradient_values", "[1]"],
        ["--model_path1", "a", "--model_path2", "b", "--gradient_values", "[1]", "--layer_only", "--no_layers"],
        ["--model_path1", "a", "--model_path2", "b", "--gradient_values", "[1]", "--ratio", "0.5"],
    ],
)
def test_blockmerge_bad_flags_exit_2(capsys, argv) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["blockmerge", *argv])
    assert stopped.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_blockmerge_help_explains_the_share_and_the_depth_interpolation(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["blockmerge", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "A gradient value is model 2's share" in text
    assert "interpolated over the position in its tensor list" in text and "examples:" in text


@pytest.mark.slow
def test_an_interrupted_blockmerge_says_how_to_resume_and_resumes_byte_for_byte(tmp_path, five_layers) -> None:
    first, second = five_layers
    argv = blockmerge_args(first, second, "--max_shard_size", "20KB", gradient="[0.2, 0.9]")
    reference, out = tmp_path / "reference", tmp_path / "out"
    assert main([*argv, "--output_model_path", str(reference)]) == 0
    command = [sys.executable, "-m", "tui_merge", *argv, "--output_model_path", str(out)]
    crashing = [sys.executable, str(Path(__file__).parent / "crash_at.py"), "SIGINT@30000", *command[3:]]

    stopped = subprocess.run(crashing, capture_output=True, text=True)

    assert stopped.returncode == 130 and not out.exists()
    hint = re.search(r"continue with (tui-merge blockmerge .*--resume)", stopped.stderr)
    assert hint and f"--output_model_path {out}" in hint[1]
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and f"continue it with {hint[1]}" in again.stderr
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert folder_digest(out) == folder_digest(reference)


# --- circuit --------------------------------------------------------------------------------


def test_circuit_arguments_become_a_circuit_config_field_by_field(capsys, llama_base, llama_finetune, llama_reordered):
    argv = ["circuit", str(llama_base), str(llama_finetune), str(llama_reordered), "out", "--temperature", "0.25",
            "--base_droprate", "0.3", "--meaningful_change_threshold", "1e-4", "--seed", "9", "--skip_rescaling",
            "--print-yaml"]  # fmt: skip
    config = printed_config(capsys, argv)

    assert config["merge_method"] == "circuit"
    assert config["base_model"] == str(llama_base)
    assert [entry["model"] for entry in config["models"]] == [str(llama_finetune), str(llama_reordered)]
    assert config["parameters"] == {
        "temperature": 0.25, "base_droprate": 0.3, "meaningful_change_threshold": 1e-4, "epsilon": 0.1,
        "skip_rescaling": True,
    }  # fmt: skip
    assert config["tui_merge"] == {"seed": 9}


def test_a_circuit_config_file_gives_the_same_config_and_the_command_line_wins(
    capsys, tmp_path, llama_base, llama_finetune, llama_reordered
) -> None:
    settings = tmp_path / "circuit.yaml"
    settings.write_text(
        f"base_model: {llama_base}\nvariant_models:\n  - {llama_finetune}\n  - {llama_reordered}\n"
        f"output_dir: {tmp_path / 'out'}\nparameters:\n  temperature: 0.7\n  base_droprate: 0.2\n  seed: 4\n"
    )
    from_file = printed_config(capsys, ["circuit", "--config", str(settings), "--print-yaml"])
    from_flags = printed_config(
        capsys,
        ["circuit", str(llama_base), str(llama_finetune), str(llama_reordered), "out", "--temperature", "0.7",
         "--base_droprate", "0.2", "--seed", "4", "--print-yaml"],
    )  # fmt: skip
    overridden = printed_config(capsys, ["circuit", "--config", str(settings), "--temperature", "0.1", "--print-yaml"])

    assert from_file == from_flags
    assert overridden["parameters"]["temperature"] == 0.1 and overridden["parameters"]["base_droprate"] == 0.2


def test_circuit_merge_equals_the_run_of_its_config(capsys, tmp_path, llama_base, llama_finetune, llama_reordered):
    out = tmp_path / "out"
    argv = ["circuit", str(llama_base), str(llama_finetune), str(llama_reordered), str(out), "--seed", "2"]
    assert main(argv) == 0
    replay = tmp_path / "replay"
    assert main(["run", str(out / "tui_merge_config.yaml"), str(replay)]) == 0

    assert folder_digest(replay) == folder_digest(out)
    assert not np.array_equal(
        weights(out)["model.embed_tokens.weight"], weights(llama_base)["model.embed_tokens.weight"]
    )


def test_circuit_self_check_passes_and_reads_as_a_report(capsys) -> None:
    assert main(["circuit", "--test"]) == 0
    out = capsys.readouterr().out
    assert "circuit self-check on synthetic tensors:" in out
    assert "FAIL" not in out
    assert re.search(r"^(\d+) of \1 checks passed\.$", out, re.M)


@pytest.mark.parametrize(
    ("argv", "file_text", "message"),
    [
        (["{base}", "{ft}", "out", "--temperature", "2"], None, "--temperature (or parameters.temperature"),
        (["{base}", "out"], None, "circuit takes BASE VARIANT [VARIANT...] OUT"),
        ([], None, "Name the models"),
        (["--config", "{file}"], "base_model: x\nvariants: [y]\n", "unknown key 'variants'"),
        (["--config", "{file}"], "base_model: x\nvariant_models: [y]\nparameters: {droprate: 1}\n", "base_droprate"),
        (["--config", "{file}"], "base_model: x\nvariant_models: y\n", "variant_models must be a list"),
        (["--config", "{file}"], "[not, a, mapping]\n", "is a mapping"),
        (["--config", "{missing}"], None, "does not exist"),
        (["--config", "{file}"], "base_model: [x\n", "circuit.yaml:2: this is not valid YAML"),
    ],
)
def test_circuit_bad_input_exits_2_with_one_sentence(
    capsys, tmp_path, llama_base, llama_finetune, argv, file_text, message
) -> None:
    path = tmp_path / "circuit.yaml"
    if file_text is not None:
        path.write_text(file_text)
    names = {"base": llama_base, "ft": llama_finetune, "file": path, "missing": tmp_path / "none.yaml"}

    status = main(["circuit", *[arg.format(**names) for arg in argv]])

    assert status == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_circuit_bad_flag_values_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["circuit", "a", "b", "c", "--base_droprate", "half"])
    assert stopped.value.code == 2


# --- import-recipe --------------------------------------------------------------------------

CARD = """\
---
license: apache-2.0
---
# A merge

```python
merge_method = "not this one"
```

## Configuration

```yaml
# chosen with care
merge_method: slerp
base_model: {base}
models:
  - model: {base}
  - model: {other}
parameters:
  t: [0, 0.5, 1]
dtype: float32
```
"""


def test_import_recipe_writes_the_cards_yaml_block_and_it_runs(capsys, tmp_path, llama_base, llama_finetune) -> None:
    card = tmp_path / "README.md"
    card.write_text(CARD.format(base=llama_base, other=llama_finetune))
    config = tmp_path / "merge.yaml"

    assert main(["import-recipe", str(card), "-o", str(config)]) == 0

    text = config.read_text()
    block = CARD.format(base=llama_base, other=llama_finetune).split("```yaml\n")[1].split("```")[0]
    assert text.startswith(f"# Imported from {card}") and text.endswith(block)
    err = capsys.readouterr().err
    assert f"found    {llama_finetune}" in err and "every model is here" in err
    assert main(["run", str(config), str(tmp_path / "out")]) == 0


def test_import_recipe_lists_missing_models_and_exits_1(capsys, tmp_path, llama_base, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    card = tmp_path / "card.md"
    card.write_text(CARD.format(base=llama_base, other="someone/missing-model-7B"))

    status = main(["import-recipe", str(card), "-o", str(tmp_path / "merge.yaml")])

    assert status == 1 and (tmp_path / "merge.yaml").exists()
    err = capsys.readouterr().err
    assert "missing  someone/missing-model-7B" in err and "hf download someone/missing-model-7B" in err
    assert "1 of its 2 models is not here yet" in err


@pytest.mark.parametrize(
    ("card_text", "message"),
    [
        ("# no recipe here\n```yaml\nfoo: 1\n```\n", "holds no mergekit recipe"),
        ("intro\n\n```yaml\nmerge_method: slurp\nmodels: [{model: a}]\n```\n", "card.md:4: Unknown merge method"),
        ("```yaml\nmerge_method: linear\nmodels: [\n```\n", "card.md:4: this is not valid YAML"),
    ],
)
def test_import_recipe_bad_cards_exit_2_naming_the_line(capsys, tmp_path, card_text, message) -> None:
    card = tmp_path / "card.md"
    card.write_text(card_text)

    assert main(["import-recipe", str(card)]) == 2
    assert message in capsys.readouterr().err


def test_import_recipe_never_overwrites_without_force(capsys, tmp_path, llama_base, llama_finetune) -> None:
    card = tmp_path / "card.md"
    card.write_text(CARD.format(base=llama_base, other=llama_finetune))
    config = tmp_path / "merge.yaml"
    config.write_text("mine")

    assert main(["import-recipe", str(card), "-o", str(config)]) == 2
    assert config.read_text() == "mine"
    assert main(["import-recipe", str(card), "-o", str(config), "--force"]) == 0


def test_fenced_blocks_know_tildes_languages_and_unclosed_blocks() -> None:
    text = "a\n~~~yml\nmerge_method: linear\n~~~\n````\nx: 1\n```\nstill inside\n````\n```yaml\nmerge_method: ties\n"

    blocks = fenced_blocks(text)

    assert [(block.language, block.first_line) for block in blocks] == [("yml", 3), ("", 6), ("yaml", 11)]
    assert blocks[1].text == "x: 1\n```\nstill inside\n"
    assert find_recipe(text).text == "merge_method: linear\n"


def test_import_recipe_print_yaml_prints_the_config_and_writes_nothing(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    card = tmp_path / "card.md"
    card.write_text(CARD.format(base=llama_base, other=llama_finetune))

    assert main(["import-recipe", str(card), "-o", str(tmp_path / "merge.yaml"), "--print-yaml"]) == 0

    config = yaml.safe_load(capsys.readouterr().out)
    assert config["merge_method"] == "slerp" and config["parameters"] == {"t": [0, 0.5, 1]}
    assert not (tmp_path / "merge.yaml").exists()
