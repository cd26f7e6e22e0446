"""``model+adapter`` references: a PEFT LoRA adapter applied as the weights stream, checked against W + s*B@A.

The adapters are written here by hand in PEFT's layout (``adapter_config.json``, ``adapter_model.safetensors``
with ``base_model.model.<module>.lora_A.weight`` names); the expected tensors are computed here from the files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tui_merge.cli import main

Q, V = "model.layers.{}.self_attn.q_proj.weight", "model.layers.{}.self_attn.v_proj.weight"
EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"


def tensors(folder: Path, file: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return {name: value.float() for name, value in load_file(folder / file).items()}


def write_adapter(
    folder: Path, base: Path, *, rank: int = 4, alpha: float = 8, seed: int = 0, embedding: bool = False,
    whole: dict[str, torch.Tensor] | None = None, **settings: object,
) -> Path:  # fmt: skip
    """A LoRA adapter on q_proj and v_proj of every layer of ``base`` (and its embeddings when asked)."""
    weights = tensors(base)
    generator = torch.Generator().manual_seed(seed)
    stored: dict[str, torch.Tensor] = {}
    for layer in range(2):
        for template in (Q, V):
            name = template.format(layer)
            out, into = weights[name].shape
            if settings.get("fan_in_fan_out"):  # a Conv1D layer stores its weight as [in, out]
                into, out = out, into
            module = f"base_model.model.{name.removesuffix('.weight')}"
            stored[f"{module}.lora_A.weight"] = torch.randn(rank, into, generator=generator)
            stored[f"{module}.lora_B.weight"] = torch.randn(out, rank, generator=generator) * 0.1
    if embedding:
        vocab, dim = weights[EMBED].shape
        stored["base_model.model.model.embed_tokens.lora_embedding_A"] = torch.randn(rank, vocab, generator=generator)
        stored["base_model.model.model.embed_tokens.lora_embedding_B"] = torch.randn(dim, rank, generator=generator)
    for name, value in (whole or {}).items():
        stored[f"base_model.model.{name}"] = value
    folder.mkdir(parents=True, exist_ok=True)
    save_file(stored, folder / "adapter_model.safetensors", metadata={"format": "pt"})
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": ["q_proj", "v_proj"],
              "fan_in_fan_out": False, "use_rslora": False, "bias": "none", **settings}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def adapted(base: Path, adapter: Path, name: str, scale: float, *, transpose: bool = False) -> torch.Tensor:
    """W + scale * B @ A for one weight, from the files."""
    lora = tensors(adapter, "adapter_model.safetensors")
    module = f"base_model.model.{name.removesuffix('.weight')}"
    update = lora[f"{module}.lora_B.weight"] @ lora[f"{module}.lora_A.weight"]
    return tensors(base)[name] + scale * (update.T if transpose else update)


def run(tmp_path: Path, text: str, name: str = "out") -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(text)
    assert main(["run", str(config), str(tmp_path / name)]) == 0
    return tmp_path / name


def test_a_linear_merge_reads_the_adapted_weights(tmp_path, llama_base, llama_finetune) -> None:
    adapter = write_adapter(tmp_path / "my-lora", llama_base)
    out = tensors(run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {llama_base}+{adapter}\n"
                                f"  - model: {llama_finetune}\n"))  # fmt: skip

    tune = tensors(llama_finetune)
    for layer in range(2):
        for name in (Q.format(layer), V.format(layer)):
            expected = 0.5 * adapted(llama_base, adapter, name, 8 / 4) + 0.5 * tune[name]
            assert torch.allclose(out[name], expected, atol=1e-5), name
    name = "model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(out[name], 0.5 * tensors(llama_base)[name] + 0.5 * tune[name], atol=1e-6)
    assert not (adapter.parent / f"{llama_base.name}_{adapter.name}").exists()  # no merged copy on disk


@pytest.mark.parametrize(
    ("settings", "scale", "transpose"),
    [({}, 8 / 4, False), ({"use_rslora": True}, 8 / math.sqrt(4), False), ({"fan_in_fan_out": True}, 2.0, True),
     ({"alpha_pattern": {"q_proj": 4}}, None, False)],
)  # fmt: skip
def test_scale_rslora_fan_in_fan_out_and_alpha_pattern(tmp_path, llama_base, settings, scale, transpose) -> None:
    adapter = write_adapter(tmp_path / "lora", llama_base, **settings)
    out = tensors(run(tmp_path, f"merge_method: passthrough\nmodels: [{{model: {llama_base}+{adapter}}}]\n"))

    for name in (Q.format(1), V.format(1)):
        expected_scale = scale if scale is not None else (4 / 4 if "q_proj" in name else 8 / 4)
        assert torch.allclose(out[name], adapted(llama_base, adapter, name, expected_scale, transpose=transpose),
                              atol=1e-5), name  # fmt: skip


def test_embedding_updates_and_whole_tensors(tmp_path, llama_base) -> None:
    head = torch.full_like(tensors(llama_base)[HEAD], 0.25)
    adapter = write_adapter(tmp_path / "lora", llama_base, embedding=True, whole={HEAD: head})
    out = tensors(run(tmp_path, f"merge_method: passthrough\nmodels: [{{model: {llama_base}+{adapter}}}]\n"))

    lora = tensors(adapter, "adapter_model.safetensors")
    update = (
        lora["base_model.model.model.embed_tokens.lora_embedding_B"]
        @ lora["base_model.model.model.embed_tokens.lora_embedding_A"]
    )
    assert torch.allclose(out[EMBED], tensors(llama_base)[EMBED] + 2.0 * update.T, atol=1e-5)
    assert torch.equal(out[HEAD], head)


def test_blocks_of_rows_read_the_same_update(tmp_path, monkeypatch, llama_base, llama_finetune) -> None:
    """Rows of B times A equal the rows of B @ A up to float32 rounding (BLAS sums in another order for fewer
    rows); which path a tensor takes depends only on the plan, so a replay is still byte-identical."""
    from tui_merge.engine import tensor_merge

    adapter = write_adapter(tmp_path / "lora", llama_base)
    text = f"merge_method: linear\nmodels: [{{model: {llama_base}+{adapter}}}, {{model: {llama_finetune}}}]\n"
    whole = run(tmp_path, text, "whole")
    monkeypatch.setattr(tensor_merge, "BLOCK_BYTES", 256)  # a few rows per block
    blocks = run(tmp_path, text, "blocks")

    for name, value in tensors(whole).items():
        assert torch.allclose(tensors(blocks)[name], value, rtol=1e-2, atol=1e-5), name
    again = run(tmp_path, text, "again")
    assert (again / "model.safetensors").read_bytes() == (blocks / "model.safetensors").read_bytes()


def test_inspect_shows_the_adapter_and_the_same_base_twice_with_two_adapters_is_two_models(
    tmp_path, capsys, llama_base
) -> None:
    first = write_adapter(tmp_path / "first-lora", llama_base, seed=1)
    second = write_adapter(tmp_path / "second-lora", llama_base, seed=2)

    assert main(["inspect", f"{llama_base}+{first}", f"{llama_base}+{second}"]) == 0
    out = capsys.readouterr().out
    assert "first-lora: r 4 on 4 tensors" in out and "second-lora: r 4 on 4" in out
    assert "llama-base+first-lora" in out and "listed twice" not in out and "same model" not in out


def test_template_and_import_recipe_take_adapter_references(tmp_path, capsys, llama_base, llama_finetune) -> None:
    adapter = write_adapter(tmp_path / "lora", llama_base)
    reference = f"{llama_base}+{adapter}"
    assert main(["template", reference, str(llama_finetune), "--method", "linear", "-o", str(tmp_path / "t.yaml")]) == 0
    assert f"model: {reference}" in (tmp_path / "t.yaml").read_text()
    run(tmp_path, (tmp_path / "t.yaml").read_text())

    card = tmp_path / "README.md"
    card.write_text(f"# A merge\n\n```yaml\nmerge_method: linear\nmodels:\n  - model: {reference}\n"
                    f"  - model: {llama_finetune}\n```\n")  # fmt: skip
    capsys.readouterr()
    assert main(["import-recipe", str(card), "-o", str(tmp_path / "imported.yaml")]) == 0
    assert f"found    {reference}: {llama_base} + adapter {adapter}" in capsys.readouterr().err


def _damage(folder: Path, how: str) -> None:
    weights = load_file(folder / "adapter_model.safetensors")
    if how == "no B":
        weights.pop("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")
    elif how == "unknown module":
        weights["base_model.model.model.layers.0.self_attn.x_proj.lora_A.weight"] = torch.zeros(4, 32)
        weights["base_model.model.model.layers.0.self_attn.x_proj.lora_B.weight"] = torch.zeros(32, 4)
    elif how == "wrong shape":
        weights["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] = torch.zeros(4, 7)
    save_file(weights, folder / "adapter_model.safetensors")


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("no B", "has lora_A for model.layers.0.self_attn.q_proj but no lora_B"),
        ("unknown module", "changes model.layers.0.self_attn.x_proj.weight, which llama-base does not have"),
        ("wrong shape", "lora_A [4, 7], which do not fit it"),
        ("no config", "has no adapter_config.json, so it is not a PEFT adapter folder"),
        ("no weights", "has no adapter_model.safetensors (or adapter_model.bin)"),
        ("dora", "is a DoRA adapter (use_dora)"),
        ("bad rank", "needs r (a whole number of at least 1)"),
        ("missing folder", "Adapter folder"),
        ("two pluses", "is not MODEL or MODEL+ADAPTER"),
    ],
)
def test_bad_adapters_are_one_sentence(tmp_path, capsys, llama_base, llama_finetune, how, expected) -> None:
    adapter = write_adapter(tmp_path / "lora", llama_base)
    config = json.loads((adapter / "adapter_config.json").read_text())
    reference = f"{llama_base}+{adapter}"
    if how in ("no B", "unknown module", "wrong shape"):
        _damage(adapter, how)
    elif how == "no config":
        (adapter / "adapter_config.json").unlink()
    elif how == "no weights":
        (adapter / "adapter_model.safetensors").unlink()
    elif how in ("dora", "bad rank"):
        config.update({"use_dora": True} if how == "dora" else {"r": 0})
        (adapter / "adapter_config.json").write_text(json.dumps(config))
    elif how == "missing folder":
        reference = f"{llama_base}+{tmp_path / 'nowhere'}"
    else:
        reference = f"{llama_base}+{adapter}+{adapter}"
    recipe = tmp_path / "m.yaml"
    recipe.write_text(f"merge_method: linear\nmodels: [{{model: '{reference}'}}, {{model: {llama_finetune}}}]\n")

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
