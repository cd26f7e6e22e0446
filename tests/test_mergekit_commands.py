"""mergekit 0.0.2's command lines: ``legacy`` (mergekit-legacy's flags) and ``bakllama`` (its layer file).

Each builds a config; the tests check the flags field by field, that the merge equals a run of the printed
config byte for byte, and the merged tensors against formulas written here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tui_merge.cli import main


def printed(capsys, argv: list[str]) -> dict:
    assert main([*argv, "--print-yaml"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def tensors(folder: Path) -> dict[str, torch.Tensor]:
    return {name: value.float() for name, value in load_file(folder / "model.safetensors").items()}


def same_bytes_as_its_config(tmp_path: Path, capsys, argv: list[str]) -> Path:
    """Merge with ``argv`` and with the config it prints; the shards must be identical. Returns the merge."""
    assert main([*argv, "--print-yaml"]) == 0
    (tmp_path / "printed.yaml").write_text(capsys.readouterr().out)
    assert main(argv) == 0
    assert main(["run", str(tmp_path / "printed.yaml"), str(tmp_path / "replayed")]) == 0
    out = Path(argv[1]) if argv[0] == "legacy" else Path(argv[2])
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "replayed" / "model.safetensors").read_bytes()
    return out


def test_legacy_flags_become_the_config_mergekit_legacy_built(capsys, tmp_path, llama_base, llama_finetune,
                                                              llama_second_finetune) -> None:  # fmt: skip
    a, b, base = str(llama_finetune), str(llama_second_finetune), str(llama_base)
    config = printed(capsys, ["legacy", str(tmp_path / "out"), "--merge", a, "--merge", b, "--base-model", base,
                              "--density", "0.5", "--weight", "0.7", "--weight", "0.3", "--int8-mask",
                              "--naive-count", "--no-normalize"])  # fmt: skip

    assert config["merge_method"] == "ties" and config["base_model"] == base
    assert config["models"] == [
        {"model": a, "parameters": {"density": 0.5, "weight": 0.7}},
        {"model": b, "parameters": {"density": 0.5, "weight": 0.3}},
        {"model": base, "parameters": {"density": 0.5}},
    ]
    assert config["parameters"] == {"normalize": False, "int8_mask": True, "consensus_method": "count"}
    assert config["dtype"] == "bfloat16" and config["tui_merge"] == {"device": "cpu"}

    slerp = printed(capsys, ["legacy", "out", "--method", "slerp", "--merge", a, "--base-model", base,
                             "--weight", "0.25", "--no-bf16", "--cuda", "--no-copy-tokenizer"])  # fmt: skip
    assert slerp["parameters"] == {"t": 0.25} and "dtype" not in slerp
    assert slerp["models"] == [{"model": a}, {"model": base}]
    assert slerp["tui_merge"] == {"device": "cuda", "copy_tokenizer": False}


def test_legacy_ties_by_count_merges_as_the_formula_and_as_its_config(
    capsys, tmp_path, llama_base, llama_finetune, llama_second_finetune
) -> None:
    argv = ["legacy", str(tmp_path / "out"), "--merge", str(llama_finetune), "--merge", str(llama_second_finetune),
            "--base-model", str(llama_base), "--weight", "0.7", "--weight", "0.3", "--naive-count",
            "--no-bf16"]  # fmt: skip
    out = same_bytes_as_its_config(tmp_path, capsys, argv)

    name = "model.layers.1.self_attn.v_proj.weight"
    base, first, second = (tensors(folder)[name] for folder in (llama_base, llama_finetune, llama_second_finetune))
    deltas = [0.7 * (first - base), 0.3 * (second - base)]
    votes = sum(torch.sign(delta) for delta in deltas)
    elected = torch.where(votes >= 0, 1.0, -1.0)
    agree = [(torch.sign(delta) == elected) & (delta != 0) for delta in deltas]
    total = sum(delta * mask for delta, mask in zip(deltas, agree))
    divisor = 0.7 * agree[0].float() + 0.3 * agree[1].float()
    expected = base + total / torch.where(divisor == 0, 1.0, divisor)
    assert torch.allclose(tensors(out)[name], expected, atol=1e-6)
    by_sum = [(torch.sign(delta) == torch.where(sum(deltas) >= 0, 1.0, -1.0)) & (delta != 0) for delta in deltas]
    assert any(not torch.equal(x, y) for x, y in zip(agree, by_sum))  # the two elections differ somewhere here


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--weight", "0.1", "--weight", "0.2", "--weight", "0.3", "--weight", "0.4"], "--weight was given 4 times"),
        (["--method", "slerp"], "slerp takes exactly one --weight (its t), got 0"),
        (["--method", "tise"], "did you mean 'ties'?"),
    ],
)
def test_bad_legacy_flags_are_one_sentence(capsys, tmp_path, llama_base, llama_finetune, extra, expected) -> None:
    argv = ["legacy", str(tmp_path / "out"), "--merge", str(llama_finetune), "--base-model", str(llama_base), *extra]

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_bakllama_stacks_ranges_scales_down_projections_and_takes_the_chosen_ends(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    layers = tmp_path / "layers.yaml"
    layers.write_text(
        f"layer_slices:\n  - {{model: {llama_base}, start: 0, end: 2}}\n"
        f"  - {{model: {llama_finetune}, start: 1, end: 2, scale: 0.5}}\n"
        f"embedding_source: {llama_finetune}\nlm_head_source: {llama_base}\n"
    )
    config = printed(capsys, ["bakllama", str(layers)])
    assert config["merge_method"] == "passthrough"
    assert [s["sources"][0]["layer_range"] for s in config["slices"]] == [[0, 2], [1, 2]]
    assert config["slices"][1]["sources"][0]["parameters"] == {"scale": [{"filter": "down_proj", "value": 0.5}]}
    assert config["tui_merge"] == {"embeddings_from": str(llama_finetune), "head_from": str(llama_base)}

    out = same_bytes_as_its_config(tmp_path, capsys, ["bakllama", str(layers), str(tmp_path / "out")])
    merged, base, tune = tensors(out), tensors(llama_base), tensors(llama_finetune)
    for name in ("self_attn.q_proj.weight", "mlp.down_proj.weight"):
        assert torch.equal(merged[f"model.layers.0.{name}"], base[f"model.layers.0.{name}"])
        assert torch.equal(merged[f"model.layers.1.{name}"], base[f"model.layers.1.{name}"])
    assert torch.equal(merged["model.layers.2.self_attn.q_proj.weight"], tune["model.layers.1.self_attn.q_proj.weight"])
    assert torch.allclose(
        merged["model.layers.2.mlp.down_proj.weight"], 0.5 * tune["model.layers.1.mlp.down_proj.weight"]
    )
    assert torch.equal(merged["model.embed_tokens.weight"], tune["model.embed_tokens.weight"])
    assert torch.equal(merged["lm_head.weight"], base["lm_head.weight"])
    assert torch.equal(merged["model.norm.weight"], base["model.norm.weight"])
    assert len([name for name in merged if name.endswith("mlp.up_proj.weight")]) == 3


def test_bakllama_defaults_need_no_options_of_ours(capsys, tmp_path, llama_base, llama_finetune) -> None:
    layers = tmp_path / "layers.yaml"
    layers.write_text(
        f"layer_slices:\n  - {{model: {llama_base}, start: 0, end: 1}}\n"
        f"  - {{model: {llama_finetune}, start: 1, end: 2}}\nembedding_source: {llama_base}\n"
    )

    assert "tui_merge" not in printed(capsys, ["bakllama", str(layers)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("layer_slices:\n  - {{model: {m}, start: 2, end: 1}}\n", "start 2 and end 1 must satisfy 0 <= start < end"),
        ("layer_slices:\n  - {{model: {m}, begin: 0, end: 1}}\n", "layer_slices.0.begin: unknown key"),
        ("layer_slices: []\n", "layer_slices is empty"),
        ("layer_slices:\n  - {{model: {m}, start: 0, end: 9}}\n", "[0, 9] goes beyond"),
    ],
)
def test_bad_bakllama_files_are_one_sentence(capsys, tmp_path, llama_base, text, expected) -> None:
    layers = tmp_path / "layers.yaml"
    layers.write_text(text.format(m=llama_base))

    assert main(["bakllama", str(layers), str(tmp_path / "out")]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "out").exists()
