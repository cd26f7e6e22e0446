"""Quantized checkpoints: block-scaled FP8 merges as the values it stands for; every other kind is refused.

The FP8 fixtures are the tiny llama pair quantized here the way DeepSeek V3
stores its linear weights (``float8_e4m3fn`` codes and a ``weight_scale_inv``
per block), with blocks that do not divide the shapes, and the fine-tune's
weights on a wider range so that the two models' scales differ.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import folder_digest
from safetensors.torch import load_file, save_file

from model_factory import edited_copy
from tui_merge.cli import main

BLOCK = (24, 20)
QUANTIZED = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def fp8_copy(source: Path, target: Path, *, widen: float = 1.0) -> Path:
    """``source`` with every layer projection stored as block-scaled FP8 (after multiplying it by ``widen``)."""
    shutil.copytree(source, target)
    weights = load_file(target / "model.safetensors")
    stored = {}
    for name, tensor in weights.items():
        if name.endswith(".weight") and any(f".{part}." in name for part in QUANTIZED):
            values = tensor.float() * widen
            codes = torch.empty_like(values, dtype=torch.float8_e4m3fn)
            scales = torch.empty(math.ceil(values.shape[0] / BLOCK[0]), math.ceil(values.shape[1] / BLOCK[1]))
            for i in range(scales.shape[0]):
                for j in range(scales.shape[1]):
                    rows, columns = slice(i * BLOCK[0], (i + 1) * BLOCK[0]), slice(j * BLOCK[1], (j + 1) * BLOCK[1])
                    scales[i, j] = values[rows, columns].abs().max() / 448.0
                    codes[rows, columns] = (values[rows, columns] / scales[i, j]).to(torch.float8_e4m3fn)
            stored[name], stored[name + "_scale_inv"] = codes, scales
        else:
            stored[name] = tensor.to(torch.bfloat16)  # as the releases store what they do not quantize
    save_file(stored, target / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((target / "config.json").read_text())
    config["dtype"] = "bfloat16"
    config["quantization_config"] = {
        "quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": list(BLOCK),
    }  # fmt: skip
    (target / "config.json").write_text(json.dumps(config))
    return target


def values_of(folder: Path) -> dict[str, np.ndarray]:
    """Every weight of an FP8 folder as the float64 values it stands for, dequantized block by block."""
    weights = load_file(folder / "model.safetensors")
    values = {}
    for name, tensor in weights.items():
        if name.endswith("_scale_inv"):
            continue
        codes = tensor.to(torch.float64).numpy()
        scales = weights.get(name + "_scale_inv")
        if scales is not None:
            codes = codes.copy()
            for (i, j), scale in np.ndenumerate(scales.double().numpy()):
                codes[i * BLOCK[0] : (i + 1) * BLOCK[0], j * BLOCK[1] : (j + 1) * BLOCK[1]] *= scale
        values[name] = codes
    return values


@pytest.fixture(scope="module")
def fp8_pair(tmp_path_factory, llama_base, llama_finetune) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("fp8")
    return fp8_copy(llama_base, folder / "base-fp8"), fp8_copy(llama_finetune, folder / "chat-fp8", widen=3.0)


def linear_recipe(folder: Path, a: Path, b: Path, extra: str = "") -> Path:
    path = folder / "merge.yaml"
    path.write_text(f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n{extra}")
    return path


def test_fp8_inputs_merge_as_their_values_into_bfloat16_that_transformers_loads(tmp_path, fp8_pair) -> None:
    from transformers import AutoModelForCausalLM

    a, b = fp8_pair
    assert main(["run", str(linear_recipe(tmp_path, a, b)), str(tmp_path / "out"), "--verify"]) == 0

    merged = load_file(tmp_path / "out" / "model.safetensors")
    truth_a, truth_b = values_of(a), values_of(b)
    assert set(merged) == set(truth_a)  # no scale tensors: the output holds plain weights
    for name, tensor in merged.items():
        assert tensor.dtype == torch.bfloat16, name
        expected = (truth_a[name] + truth_b[name]) / 2
        error = np.abs(tensor.double().numpy() - expected).max() / max(np.abs(expected).max(), 1e-12)
        assert error < 2**-7, (name, error)  # bfloat16's rounding; the raw codes averaged were off by 1000x
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16


def test_fp8_output_on_request_round_trips_with_the_inputs_block_size(tmp_path, fp8_pair) -> None:
    a, b = fp8_pair
    recipe = linear_recipe(tmp_path, a, b, "dtype: float32\ntui_merge: {quantize: fp8, shard_size: 30KB}\n")
    assert main(["run", str(recipe), str(tmp_path / "plain-config")]) == 0  # the config check passes too
    shutil.rmtree(tmp_path / "plain-config")
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0

    folder = tmp_path / "out"
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization_config"]["weight_block_size"] == list(BLOCK)
    index = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    merged = {}
    for shard in set(index.values()):
        merged.update(load_file(folder / shard))
    q = "model.layers.1.mlp.down_proj.weight"
    assert merged[q].dtype == torch.float8_e4m3fn and merged[q + "_scale_inv"].dtype == torch.float32
    assert tuple(merged[q + "_scale_inv"].shape) == tuple(math.ceil(n / s) for n, s in zip(merged[q].shape, BLOCK))
    truth_a, truth_b = values_of(a), values_of(b)
    shutil.copytree(folder, tmp_path / "single")  # one file, for values_of
    save_file(merged, tmp_path / "single" / "model.safetensors", metadata={"format": "pt"})
    for name, values in values_of(tmp_path / "single").items():
        expected = (truth_a[name] + truth_b[name]) / 2
        error = np.abs(values - expected).max() / max(np.abs(expected).max(), 1e-12)
        assert error < 2**-3, (name, error)  # e4m3 keeps three bits of mantissa
    # A resume that keeps a weight's shard but not its scales' quantizes it again: the same bytes.
    assert main(["verify", str(folder)]) == 0


def test_quantize_without_fp8_inputs_is_refused(capsys, tmp_path, llama_base, llama_finetune) -> None:
    recipe = linear_recipe(tmp_path, llama_base, llama_finetune, "tui_merge: {quantize: fp8}\n")
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "quantize: fp8 quantizes the merge with the block size of its block-scaled FP8 inputs" in err
    assert "llama-base: not block-scaled FP8" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda config, weights: config.update(quantization_config={"quant_method": "gptq", "bits": 4}), "(gptq,"),
        (lambda config, weights: config.update(quantization_config={"quant_method": "awq"}), "(awq,"),
        (lambda config, weights: config.update(quantization_config={"quant_method": "fp8"}), "(fp8,"),
        (
            lambda config, weights: weights.update(
                {"model.layers.0.self_attn.q_proj.qweight": torch.zeros(4, 32, dtype=torch.int32)}
            ),
            "stores its weights packed into integers",
        ),
    ],
    ids=["gptq", "awq", "fp8 without blocks", "packed without a config"],
)
def test_other_quantized_checkpoints_are_refused_before_anything_is_written(
    capsys, tmp_path, llama_base, llama_finetune, change, said
) -> None:
    quantized = edited_copy(llama_finetune, tmp_path / "quantized", change)
    before = folder_digest(quantized)

    assert main(["run", str(linear_recipe(tmp_path, llama_base, quantized)), str(tmp_path / "out")]) == 2

    err = capsys.readouterr().err
    assert err.startswith("tui-merge: error: ") and err.count("\n") == 1 and said in err, err
    assert "merge the unquantized release of it instead" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert folder_digest(quantized) == before


@pytest.mark.slow
def test_a_resume_that_kept_a_weight_but_not_its_scales_quantizes_it_again_to_the_same_bytes(
    tmp_path, fp8_pair
) -> None:
    import subprocess
    import sys

    from tui_merge.engine.prepare import prepare

    a, b = fp8_pair
    straddling = None
    for size in range(1000, 20000, 250):  # a shard size where a weight ends a shard and its scales start the next
        recipe = linear_recipe(tmp_path, a, b, f"tui_merge: {{quantize: fp8, shard_size: {size}}}\n")
        plan = prepare(recipe)
        done = 0
        for shard, following in zip(plan.shards, plan.shards[1:]):
            done += shard.size
            if plan.tasks[following.tasks[0]].scales_of is not None:
                straddling = done
                break
        if straddling is not None:
            break
    assert straddling is not None
    assert main(["run", str(recipe), str(tmp_path / "reference")]) == 0

    crash = [sys.executable, str(Path(__file__).parent / "crash_at.py"), f"SIGKILL@{straddling + 1}"]
    killed = subprocess.run([*crash, "run", str(recipe), str(tmp_path / "out")], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr

    assert main(["run", str(recipe), str(tmp_path / "out"), "--resume"]) == 0
    assert folder_digest(tmp_path / "out") == folder_digest(tmp_path / "reference")
