"""Shapes beyond one stack of dense layers: mixtures of experts and per-layer config arrays.

Each family is a tiny random-init model saved by transformers itself (a base
and a fine-tune: the base plus small noise), so the names on disk are the
ones real checkpoints of that family carry (per-expert matrices that
transformers fuses when it loads them, ``layer_types`` of one value a layer).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tui_merge.cli import main

SMALL = {
    "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 32, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 128,
    "num_local_experts": 4, "num_experts": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
    "n_shared_experts": 1, "shared_expert_intermediate_size": 32, "kv_lora_rank": 16, "q_lora_rank": 16,
    "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 8, "n_group": 1, "topk_group": 1,
    "first_k_dense_replace": 1, "tie_word_embeddings": False, "max_position_embeddings": 64,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
}  # fmt: skip
"""Tiny sizes, set where the family's config has the key."""

FAMILIES = ("mixtral", "qwen3_moe", "deepseek_v3", "gemma2", "qwen2", "falcon_h1", "qwen3_next")

OWN_SIZES = {
    "deepseek_v3": {"num_key_value_heads": 4},
    "qwen3_next": {"full_attention_interval": 2},
    "falcon_h1": {"mamba_n_heads": 8, "mamba_d_head": 8, "mamba_d_ssm": 64, "mamba_d_state": 16, "mamba_chunk_size": 8},
}
"""Families that need other sizes: multi-head latent attention has as many key/value heads as queries, a
qwen3_next of three layers needs a full-attention layer among them to run (every second, not every fourth), and
falcon_h1's mamba mixer pads every sequence to its chunk (256 by default) in the scan that transformers runs
without its CUDA kernels: 30 s or more per forward pass under some releases, at its default sizes."""


def build_pair(folder: Path, model_type: str) -> tuple[Path, Path]:
    from transformers import AutoConfig, AutoModelForCausalLM

    defaults = AutoConfig.for_model(model_type)
    sizes = {key: value for key, value in SMALL.items() if hasattr(defaults, key)} | OWN_SIZES.get(model_type, {})
    config = AutoConfig.for_model(model_type, **sizes)
    torch.manual_seed(0)
    return save_pair(AutoModelForCausalLM.from_config(config), folder / "base", folder / "tuned")


def save_pair(model, base: Path, tuned: Path) -> tuple[Path, Path]:
    """``model`` saved as a base, then, plus noise of 1 % (a fine-tune), as a second model."""
    model.save_pretrained(base)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(tuned)
    return base, tuned


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory) -> tuple[str, Path, Path]:
    folder = tmp_path_factory.mktemp(request.param)
    return (request.param, *build_pair(folder, request.param))


def run(folder: Path, recipe: str) -> Path:
    (folder / "merge.yaml").write_text(recipe)
    assert main(["run", str(folder / "merge.yaml"), str(folder / "out"), "--verify"]) == 0
    return folder / "out"


def finite_logits(folder: Path) -> bool:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        logits = model(torch.tensor([[3, 5, 7, 9]])).logits
    return bool(torch.isfinite(logits).all())


def test_a_linear_merge_is_the_mean_of_every_tensor_and_loads(tmp_path, family) -> None:
    name, base, tuned = family
    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {base}\n  - model: {tuned}\n")

    a, b = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    merged = load_file(out / "model.safetensors")
    assert set(merged) == set(a)  # the names on disk (per expert for the MoE families), as the parents store them
    for tensor_name, tensor in merged.items():
        assert torch.allclose(tensor, (a[tensor_name] + b[tensor_name]) / 2, atol=1e-6), (name, tensor_name)
    assert finite_logits(out)


def test_layer_stacking_follows_the_slices_in_per_layer_config_arrays(tmp_path, family) -> None:
    name, base, tuned = family
    out = run(
        tmp_path,
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {base}, layer_range: [0, 2]}}]\n"
        f"  - sources: [{{model: {tuned}, layer_range: [1, 3]}}]\n",
    )

    config, parent = json.loads((out / "config.json").read_text()), json.loads((base / "config.json").read_text())
    assert config["num_hidden_layers"] == 4
    if "layer_types" in parent:
        types = parent["layer_types"]
        assert config["layer_types"] == [types[0], types[1], types[1], types[2]]
    a, b = load_file(base / "model.safetensors"), load_file(tuned / "model.safetensors")
    merged = load_file(out / "model.safetensors")
    for output_layer, (source, layer) in enumerate([(a, 0), (a, 1), (b, 1), (b, 2)]):
        prefix = f"model.layers.{layer}."
        for tensor_name in (key for key in source if key.startswith(prefix)):
            stacked = f"model.layers.{output_layer}." + tensor_name.removeprefix(prefix)
            assert torch.equal(merged[stacked], source[tensor_name]), (name, stacked)
    assert finite_logits(out)


def test_a_stacking_that_breaks_a_layer_rule_is_refused_naming_it(tmp_path, capsys, tmp_path_factory) -> None:
    """deepseek_v3's first layer is dense (first_k_dense_replace: 1), the others experts: a stack that puts an
    expert layer first cannot be described by that rule."""
    base, tuned = build_pair(tmp_path_factory.mktemp("deepseek"), "deepseek_v3")
    (tmp_path / "merge.yaml").write_text(
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {base}, layer_range: [1, 3]}}]\n"
        f"  - sources: [{{model: {tuned}, layer_range: [0, 1]}}]\n"
    )

    assert main(["run", str(tmp_path / "merge.yaml"), str(tmp_path / "out")]) == 2

    err = capsys.readouterr().err
    assert "the layers the slices stack break" in err and "first_k_dense_replace rule" in err
    assert not (tmp_path / "out").exists()


def test_lineage_of_a_model_without_attention_or_mlp_uses_the_matrices_it_has(tmp_path, capsys) -> None:
    """A state space model (mamba) has neither: its mixer's matrices tell unrelated parents apart all the same."""
    from transformers import MambaConfig, MambaForCausalLM

    config = MambaConfig(hidden_size=32, num_hidden_layers=2, vocab_size=128, state_size=8)
    for seed, name in ((0, "one"), (7, "other")):
        torch.manual_seed(seed)
        MambaForCausalLM(config).save_pretrained(tmp_path / name)

    assert main(["inspect", str(tmp_path / "one"), str(tmp_path / "other")]) == 1  # not mergeable
    out = capsys.readouterr().out
    assert "do not share a base" in out and "backbone.layers.0.mixer." in out


ENCODER_DECODER_SIZES = {
    "d_model": 32, "hidden_size": 32, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
    "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "dim_ff": 64, "dim_head": 8, "vocab_size": 512, "attention_window": [4, 4],
    "max_encoder_position_embeddings": 64, "max_decoder_position_embeddings": 64,
}  # fmt: skip


@pytest.mark.parametrize("model_type", ["led", "cpmant"])
def test_a_vocab_size_that_legitimately_differs_from_the_embedding_rows_is_no_damage(tmp_path, model_type) -> None:
    """led's token embedding is ``shared.weight`` (its position tables are not the vocabulary); cpmant's
    embedding holds prompt rows beyond vocab_size. transformers builds and loads both, so they merge."""
    from transformers import AutoConfig, AutoModel

    defaults = AutoConfig.for_model(model_type)
    config = AutoConfig.for_model(
        model_type, **{key: value for key, value in ENCODER_DECODER_SIZES.items() if hasattr(defaults, key)}
    )
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    save_pair(model, tmp_path / "a", tmp_path / "b")

    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {tmp_path / 'a'}\n  - model: {tmp_path / 'b'}\n")

    assert json.loads((out / "config.json").read_text())["vocab_size"] == 512  # as the parents say, not the rows


def _albert():
    from transformers import AlbertConfig

    return AlbertConfig(hidden_size=32, embedding_size=16, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, vocab_size=128)  # fmt: skip


def _swin():
    from transformers import SwinConfig

    return SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[2, 4], window_size=2)


@pytest.mark.parametrize("make_config", [_albert, _swin], ids=["albert shares one block", "swin heads per stage"])
def test_families_whose_config_is_not_one_count_per_stack_merge_as_transformers_builds_them(
    tmp_path, make_config
) -> None:
    """albert runs 3 layers on one block of weights; swin gives its heads per stage. transformers builds both
    from their config.json, so neither is damage: they merge, verify, and keep their config's counts."""
    from transformers import AutoModel

    config = make_config()
    torch.manual_seed(0)
    model = AutoModel.from_config(config)
    save_pair(model, tmp_path / "a", tmp_path / "b")

    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {tmp_path / 'a'}\n  - model: {tmp_path / 'b'}\n")

    written, parent = (
        json.loads((out / "config.json").read_text()),
        json.loads((tmp_path / "a" / "config.json").read_text()),
    )
    for key in ("num_hidden_layers", "num_heads", "depths"):
        assert written.get(key) == parent.get(key), key
    merged, a, b = (load_file(folder / "model.safetensors") for folder in (out, tmp_path / "a", tmp_path / "b"))
    for name, tensor in merged.items():
        assert torch.allclose(tensor, (a[name] + b[name]) / 2, atol=1e-6), name


@pytest.fixture(scope="module")
def llava(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny llava (a 3-layer llama beside a 2-layer CLIP tower whose layers hold more tensors), as saved."""
    from transformers import AutoModelForImageTextToText, CLIPVisionConfig, LlamaConfig, LlavaConfig

    text = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=128)  # fmt: skip
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(LlavaConfig(text_config=text, vision_config=vision,
                                                                image_token_index=120))  # fmt: skip
    folder = tmp_path_factory.mktemp("llava")
    return save_pair(model, folder / "a", folder / "b")


def test_a_vision_language_model_s_language_stack_is_the_one_its_config_names(llava) -> None:
    from tui_merge.config.rendering import outside_rows
    from tui_merge.models.info import load_model_info

    info = load_model_info(str(llava[0]))

    assert info.depth == 3 and info.block_prefix == "language_model.model.layers"
    assert info.stack_depths["vision_tower.encoder.layers"] == 2
    labels = {row.filter: row.label for row in outside_rows(info)}
    assert labels["vision_tower.embeddings.patch_embedding"] == "vision tower patch embeddings"
    assert labels["multi_modal_projector.linear_1"] == "projector"
    assert labels["vision_tower.pre_layrnorm"] == "vision tower embedding norm"
    assert labels["vision_tower.post_layernorm"] == "vision tower final norm"


def test_a_gradient_runs_over_each_stack_s_own_depth(tmp_path, llava) -> None:
    """Weights [1, 0] for the base and [0, 1] for the other: each stack's last layer is the other model's."""
    a, b = llava
    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: [1, 0]}}\n"
                        f"  - model: {b}\n    parameters: {{weight: [0, 1]}}\n")  # fmt: skip

    first, second, merged = (load_file(folder / "model.safetensors") for folder in (a, b, out))
    for name, tensor in merged.items():
        for prefix, depth in (("vision_tower.encoder.layers.", 2), ("language_model.model.layers.", 3)):
            if name.startswith(prefix):
                t = int(name.removeprefix(prefix).split(".")[0]) / (depth - 1)
                expected = (1 - t) * first[name] + t * second[name]
                assert torch.allclose(tensor, expected, atol=1e-6), name


def test_layer_stacking_a_vision_language_model_keeps_its_tower(tmp_path, llava) -> None:
    a, b = llava
    out = run(
        tmp_path,
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {a}, layer_range: [0, 2]}}]\n"
        f"  - sources: [{{model: {b}, layer_range: [1, 3]}}]\n",
    )

    first, merged = load_file(a / "model.safetensors"), load_file(out / "model.safetensors")
    tower = [name for name in first if name.startswith("vision_tower.")]
    assert tower and all(torch.equal(merged[name], first[name]) for name in tower)
    assert json.loads((out / "config.json").read_text())["text_config"]["num_hidden_layers"] == 4
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out)
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=torch.tensor([[3, 5, 7]])).logits).all()


def test_layer_stacking_an_encoder_decoder_stacks_the_decoder_and_says_so_in_its_own_key(tmp_path) -> None:
    """t5's ``num_layers`` is its encoder's depth; stacking the decoder writes ``num_decoder_layers``."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(d_model=32, d_ff=64, num_layers=3, num_decoder_layers=3, num_heads=4, d_kv=8, vocab_size=128)
    a, b = save_pair(T5ForConditionalGeneration(config), tmp_path / "a", tmp_path / "b")

    out = run(
        tmp_path,
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {a}, layer_range: [0, 2]}}]\n"
        f"  - sources: [{{model: {b}, layer_range: [1, 3]}}]\n",
    )

    written = json.loads((out / "config.json").read_text())
    assert (written["num_layers"], written["num_decoder_layers"]) == (3, 4)
    first, merged = load_file(a / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(merged[name], first[name]) for name in first if name.startswith("encoder."))
    model = T5ForConditionalGeneration.from_pretrained(out)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[3, 5, 7]]), decoder_input_ids=torch.tensor([[0, 4]])).logits
    assert torch.isfinite(logits).all()


def test_experts_stored_fused_are_merged_expert_by_expert(tmp_path, tmp_path_factory) -> None:
    """gpt_oss stores its experts fused ([experts, ...] in one tensor): slerp takes each expert's own angle, as
    it does for checkpoints that store one tensor per expert, not one angle across all of them."""
    from reference_math import numpy_slerp

    base, tuned = build_pair(tmp_path_factory.mktemp("gpt_oss"), "gpt_oss")
    out = run(tmp_path, f"merge_method: slerp\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {tuned}\n"
                        "parameters: {t: 0.4}\n")  # fmt: skip

    a, b, merged = (load_file(folder / "model.safetensors") for folder in (base, tuned, out))
    fused = [name for name in merged if ".experts." in name and merged[name].dim() == 3]  # biases start at zero
    assert fused
    for name in fused:
        expected = np.stack([numpy_slerp(0.4, a[name][e].numpy(), b[name][e].numpy()) for e in range(a[name].shape[0])])
        np.testing.assert_allclose(merged[name].numpy(), expected, rtol=1e-5, atol=1e-6, err_msg=name)
    whole = numpy_slerp(0.4, a[fused[0]].numpy(), b[fused[0]].numpy())
    assert not np.allclose(merged[fused[0]].numpy(), whole, rtol=1e-5, atol=1e-6)  # one angle for all differs


@pytest.fixture(scope="module")
def qwen2_vl(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny qwen2_vl: its vision tower's merger is an ``nn.Sequential`` (``mlp.0``, a GELU, ``mlp.2``)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 128,
            "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]}}  # fmt: skip
    vision = {"depth": 2, "embed_dim": 16, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 4,
              "spatial_merge_size": 2}  # fmt: skip
    torch.manual_seed(0)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=120, video_token_id=121)
    folder = tmp_path_factory.mktemp("qwen2_vl")
    return save_pair(Qwen2VLForConditionalGeneration(config), folder / "a", folder / "b")


def test_numbered_modules_of_a_sequential_are_no_stack_of_layers(tmp_path, qwen2_vl) -> None:
    """``visual.merger.mlp.0`` and ``.2`` are a projector's two matrices: a gradient gives them the value of the
    tensors outside the stacks (its first point), never a position past the end of a two-layer stack."""
    from tui_merge.config.rendering import outside_rows
    from tui_merge.models.info import load_model_info

    a, b = qwen2_vl
    info = load_model_info(str(a))
    assert info.stack_depths == {"model.layers": 3, "visual.blocks": 2}
    assert {row.filter: row.label for row in outside_rows(info)}["visual.merger.mlp"] == "projector"

    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: [1, 0]}}\n"
                        f"  - model: {b}\n    parameters: {{weight: [0, 1]}}\n")  # fmt: skip
    first, merged = load_file(a / "model.safetensors"), load_file(out / "model.safetensors")
    for name in (name for name in merged if name.startswith("visual.merger.")):
        assert torch.allclose(merged[name], first[name], atol=1e-6), name


def _stored_fused(per_expert: Path, folder: Path) -> Path:
    """The same model as ``per_expert``, stored with its experts fused as transformers holds them in memory
    (``mlp.experts.gate_up_proj`` [experts, 2 x intermediate, hidden], ``mlp.experts.down_proj``)."""
    import shutil

    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(per_expert)
    folder.mkdir()
    shutil.copy(per_expert / "config.json", folder / "config.json")
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()},
              folder / "model.safetensors", metadata={"format": "pt"})  # fmt: skip
    return folder


@pytest.mark.parametrize("method", ["slerp", "ties"])
def test_a_fused_and_a_per_expert_copy_of_one_model_merge_to_the_same_numbers(tmp_path, method) -> None:
    """Expert e's gate and up projections are ``gate_up_proj[e, :I]`` and ``[e, I:]`` of the fused copy: each
    is merged as the matrix it is, so slerp's angle and ties' threshold are the per-expert checkpoint's."""
    base, tuned = build_pair(tmp_path / "per_expert", "qwen3_moe")
    fused_base, fused_tuned = (_stored_fused(folder, tmp_path / f"fused_{folder.name}") for folder in (base, tuned))
    recipe = {"slerp": "merge_method: slerp\nbase_model: {a}\nmodels:\n  - model: {a}\n  - model: {b}\n"
                       "parameters: {{t: 0.4}}\n",
              "ties": "merge_method: ties\nbase_model: {a}\nmodels:\n  - model: {b}\n"
                      "    parameters: {{density: 0.5, weight: 1}}\n"}[method]  # fmt: skip
    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    per_expert = load_file(run(tmp_path / "one", recipe.format(a=base, b=tuned)) / "model.safetensors")
    fused = load_file(run(tmp_path / "two", recipe.format(a=fused_base, b=fused_tuned)) / "model.safetensors")

    gate_up = [name for name in fused if name.endswith("mlp.experts.gate_up_proj")]
    assert gate_up
    for name in gate_up:
        layer = name.removesuffix("gate_up_proj")
        half = fused[name].shape[1] // 2
        for expert in range(fused[name].shape[0]):
            gate, up = per_expert[f"{layer}{expert}.gate_proj.weight"], per_expert[f"{layer}{expert}.up_proj.weight"]
            down = per_expert[f"{layer}{expert}.down_proj.weight"]
            assert torch.allclose(fused[name][expert, :half], gate, atol=1e-6), (name, expert)
            assert torch.allclose(fused[name][expert, half:], up, atol=1e-6), (name, expert)
            assert torch.allclose(fused[f"{layer}down_proj"][expert], down, atol=1e-6), (name, expert)


def test_inspect_names_every_stack_and_its_depth(qwen2_vl, capsys) -> None:
    a, _ = qwen2_vl
    assert main(["inspect", str(a)]) == 0
    table = capsys.readouterr().out
    assert "other stacks" in table and "visual.blocks x2" in table

    assert main(["inspect", "--json", str(a)]) == 0
    summary = json.loads(capsys.readouterr().out)
    found = summary["models"][0] if "models" in summary else summary
    assert found["stacks"] == {"model.layers": 3, "visual.blocks": 2} and found["main_stack"] == "model.layers"


def test_the_wizard_grid_has_a_section_for_each_stack_and_its_values_reach_that_stack(tmp_path, qwen2_vl) -> None:
    """The vision tower's two layers are rows of their own (``vision tower 0``, ``1``): set to t 0 and 1, they
    write a filtered gradient that the merge applies to the tower's layers alone; the config loads back."""
    from reference_math import numpy_slerp

    from tui_merge.config import parse_config
    from tui_merge.models.info import load_model_info
    from tui_merge.wizard.reopening import state_from_config
    from tui_merge.wizard.state import WizardState

    a, b = (str(folder) for folder in qwen2_vl)
    infos = {name: load_model_info(name) for name in (a, b)}
    state = WizardState(models=[a, b], infos=infos, method_name="slerp", base=a)
    grid = state.rebuild_grid()
    labels = [row.label for row in grid.rows]
    # In the order the model runs: the tower (between its own rows), the projector, the layers, norm and head.
    assert labels[labels.index("vision tower 0") :] == [
        "vision tower 0", "vision tower 1", "projector norm", "projector", "layer 0", "layer 1", "layer 2",
        "final norm", "output head",
    ]  # fmt: skip
    for label, t in (("vision tower 0", 0.0), ("vision tower 1", 1.0), ("layer 1", 0.3)):
        grid.set(labels.index(label), 0, t)
    text = state.config_text()
    assert "- filter: visual.blocks.  # vision tower layers" in text
    assert state_from_config(parse_config(text, "merge.yaml"), infos).grid.values == grid.values

    out = run(tmp_path, text)
    first, second, merged = (load_file(Path(folder) / "model.safetensors") for folder in (a, b, out))
    for name, tensor in merged.items():
        if name.startswith("visual.blocks."):
            expected = first[name] if name.startswith("visual.blocks.0.") else second[name]
        elif name.startswith("model.layers.") and tensor.dim() == 2:  # biases start at zero: no angle
            t = {0: 0.5, 1: 0.3, 2: 0.5}[int(name.split(".")[2])]
            expected = torch.from_numpy(numpy_slerp(t, first[name].numpy(), second[name].numpy())).float()
        else:
            continue
        assert torch.allclose(tensor, expected, atol=1e-6), name


def test_a_template_writes_one_row_per_layer_of_each_stack(tmp_path, qwen2_vl) -> None:
    a, b = qwen2_vl
    assert main(["template", "--method", "slerp", str(a), str(b), "-o", str(tmp_path / "t.yaml")]) == 0
    text = (tmp_path / "t.yaml").read_text()
    assert "# vision tower 1" in text and "# vision tower 2" not in text and "# layer 2" in text
    assert "visual.merger.mlp  # projector" in text


def test_layer_figures_keep_each_stack_s_layers_apart(qwen2_vl) -> None:
    """A tower's layer 0 is not pooled with the language model's layer 0."""
    from tui_merge.models.changes import measure_changes
    from tui_merge.models.info import load_model_info

    a, b = (str(folder) for folder in qwen2_vl)
    report = measure_changes([(a, load_model_info(a)), (b, load_model_info(b))], cache=False)
    first, second = load_file(Path(a) / "model.safetensors"), load_file(Path(b) / "model.safetensors")

    def relative(prefix: str, part: str) -> float:
        names = [name for name in first if name.startswith(prefix) and part in name and first[name].is_floating_point()]
        delta = sum(float(((second[n].double() - first[n].double()) ** 2).sum()) for n in names)
        return (delta / sum(float((first[n].double() ** 2).sum()) for n in names)) ** 0.5

    assert report.change(b, 0, "mlp") == pytest.approx(relative("model.layers.0.", ".mlp."), rel=1e-6)
    assert report.change(b, "visual.blocks.0", "mlp") == pytest.approx(relative("visual.blocks.0.", ".mlp."), rel=1e-6)


def test_splitting_by_component_splits_the_main_stack_and_leaves_the_tower_one_value_a_layer(qwen2_vl) -> None:
    """The tower names its attention ``attn``, the language model ``self_attn``: the split is the language
    model's, and the tower's rows, written first, keep their one value a layer."""
    from tui_merge.config import parse_config
    from tui_merge.engine.plan import build_plan
    from tui_merge.models.info import load_model_info
    from tui_merge.wizard.state import WizardState

    a, b = (str(folder) for folder in qwen2_vl)
    infos = {name: load_model_info(name) for name in (a, b)}
    state = WizardState(models=[a, b], infos=infos, method_name="slerp", base=a)
    grid = state.rebuild_grid()
    assert state.set_split(True) is None
    grid = state.grid
    attention = next(index for index, column in enumerate(grid.columns) if column.part and column.part.part == "attn")
    labels = [row.label for row in grid.rows]
    grid.set(labels.index("layer 2"), attention, 0.9)
    grid.set(labels.index("vision tower 1"), attention, 0.7)  # no such cell: the tower is not split
    grid.set(labels.index("vision tower 1"), len(grid.columns) - 1, 0.2)

    plan = build_plan(parse_config(state.config_text(), "merge.yaml"), infos)
    t = {task.name: task.options["t"] for task in plan.tasks}
    assert t["model.layers.2.self_attn.q_proj.weight"] == pytest.approx(0.9)
    assert t["model.layers.2.mlp.up_proj.weight"] == pytest.approx(0.5)
    assert t["visual.blocks.1.attn.qkv.weight"] == pytest.approx(0.2)


def _modules_recipe(a: Path, b: Path, *, projector: bool = True, vision: str = "vision_tower") -> str:
    text = (
        "merge_method: linear\nmodules:\n"
        f"  text_decoder:\n    models:\n      - model: {a}\n        parameters: {{weight: 0.7}}\n"
        f"      - model: {b}\n        parameters: {{weight: 0.3}}\n"
        f"  {vision}:\n    models:\n      - model: {a}\n      - model: {b}\n    parameters: {{weight: 0.5}}\n"
    )
    if projector:
        text += (
            f"  multi_modal_projector:\n    models:\n      - model: {a}\n        parameters: {{weight: 1.0}}\n"
            f"      - model: {b}\n        parameters: {{weight: 0.0}}\n"
        )
    return text


def test_mergekit_modules_give_each_part_its_own_values(tmp_path, qwen2_vl) -> None:
    """mergekit's ``modules:``: the language model at 0.7/0.3, the vision tower (its layers, patch embedding)
    at 0.5/0.5, the projector wholly from the first model; the output's recipe is the text as written."""
    a, b = qwen2_vl
    out = run(tmp_path, _modules_recipe(a, b))

    first, second, merged = (load_file(folder / "model.safetensors") for folder in (a, b, out))
    for name, tensor in merged.items():
        if name.startswith("visual.merger."):
            weights = (1.0, 0.0)
        elif name.startswith("visual."):
            weights = (0.5, 0.5)
        else:
            weights = (0.7, 0.3)
        assert torch.allclose(tensor, weights[0] * first[name] + weights[1] * second[name], atol=1e-6), name
    assert (out / "tui_merge_config.yaml").read_text() == _modules_recipe(a, b)


@pytest.mark.parametrize(
    ("recipe", "said"),
    [
        (lambda a, b: _modules_recipe(a, b, projector=False), "no module names the projector"),
        (lambda a, b: _modules_recipe(a, b, vision="audio_tower"), "module 'audio_tower' names no part"),
        (lambda a, b: _modules_recipe(a, b).replace(f"      - model: {b}\n    parameters: {{weight: 0.5}}",
                                                    "    parameters: {weight: 0.5}"), "lists other models"),
    ],
    ids=["a part no module names", "a module of no part", "modules of other models"],
)  # fmt: skip
def test_modules_that_cannot_be_read_are_refused_in_a_sentence(tmp_path, capsys, qwen2_vl, recipe, said) -> None:
    (tmp_path / "merge.yaml").write_text(recipe(*qwen2_vl))

    assert main(["run", str(tmp_path / "merge.yaml"), str(tmp_path / "out")]) == 2
    assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_one_module_of_slices_is_a_slices_recipe_and_the_wizard_leaves_modules_to_the_editor(
    tmp_path, capsys, llava
) -> None:
    a, b = llava
    recipe = (
        "merge_method: passthrough\nmodules:\n  text_decoder:\n    slices:\n"
        f"      - sources: [{{model: {a}, layer_range: [0, 2]}}]\n"
        f"      - sources: [{{model: {b}, layer_range: [1, 3]}}]\n"
    )
    out = run(tmp_path, recipe)
    assert json.loads((out / "config.json").read_text())["text_config"]["num_hidden_layers"] == 4

    assert main(["wizard", "--config", str(tmp_path / "merge.yaml")]) == 2
    assert "gives each part its own models with modules:" in capsys.readouterr().err


def test_a_fused_query_key_value_that_transformers_splits_on_loading_is_no_missing_tensor(tmp_path) -> None:
    """nomic_bert stores ``attn.Wqkv``; transformers' conversion mapping splits it into ``q_proj``, ``k_proj`` and
    ``v_proj`` when it loads: the output check names all three as present, as the loader builds them."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("nomic_bert", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, vocab_size=128)  # fmt: skip
    torch.manual_seed(0)
    a, b = save_pair(AutoModel.from_config(config), tmp_path / "a", tmp_path / "b")
    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")

    first, second, merged = (load_file(folder / "model.safetensors") for folder in (a, b, out))
    assert any(name.endswith("Wqkv.weight") for name in merged)
    for name, tensor in merged.items():
        assert torch.allclose(tensor, (first[name] + second[name]) / 2, atol=1e-6), name
    _, info = AutoModel.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_infinities_every_parent_holds_are_limits_the_merge_keeps(tmp_path, capsys) -> None:
    """gemma4_audio's clipped linears store ``input_max = inf`` until calibrated: the same infinity in every
    parent is a bound, not damage; the merge keeps it and verify passes. An infinity in one parent only is
    damage, refused naming the tensor."""
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("gemma4_audio", hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
                                  subsampling_conv_channels=[16, 8], output_proj_dims=32)  # fmt: skip
    torch.manual_seed(0)
    a, b = save_pair(AutoModel.from_config(config), tmp_path / "a", tmp_path / "b")
    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    limits = [name for name, tensor in first.items() if torch.isinf(tensor).any()]
    assert limits and all(torch.equal(first[name], second[name]) for name in limits)

    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")
    merged = load_file(out / "model.safetensors")
    for name, tensor in merged.items():
        assert (
            torch.equal(tensor, first[name])
            if name in limits
            else torch.allclose(tensor, (first[name] + second[name]) / 2, atol=1e-6)
        ), name

    second[limits[0]] = torch.zeros_like(second[limits[0]])
    save_file(second, b / "model.safetensors", metadata={"format": "pt"})
    (tmp_path / "again.yaml").write_text(f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")
    assert main(["run", str(tmp_path / "again.yaml"), str(tmp_path / "out2")]) == 2
    assert f"Input tensor {limits[0]} of" in capsys.readouterr().err


def test_a_renaming_meant_for_other_tensors_leaves_a_name_the_model_has(tmp_path) -> None:
    """deepseek_v4's conversion mapping renames ``.norm.`` (its attention's) to ``.kv_norm.``; the loader keeps
    ``model.norm.weight`` as it is, since the model has that name, and so does the output check."""
    base, tuned = build_pair(tmp_path / "models", "deepseek_v4")
    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {base}\n  - model: {tuned}\n")

    merged = load_file(out / "model.safetensors")
    assert "model.norm.weight" in merged
    assert finite_logits(out)


def test_a_merge_of_whole_models_adds_no_depth_key_the_config_did_not_have(tmp_path) -> None:
    """moonshine counts its stacks in encoder_num_hidden_layers and decoder_num_hidden_layers; a
    num_hidden_layers written beside them would be read by transformers as the decoder's depth."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model("moonshine", hidden_size=32, intermediate_size=64, encoder_num_hidden_layers=3,
                                  decoder_num_hidden_layers=2, encoder_num_attention_heads=4,
                                  decoder_num_attention_heads=4, vocab_size=128)  # fmt: skip
    torch.manual_seed(0)
    a, b = save_pair(AutoModel.from_config(config), tmp_path / "a", tmp_path / "b")
    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")

    written, parent = (json.loads((folder / "config.json").read_text()) for folder in (out, a))
    assert "num_hidden_layers" not in written
    assert (written["encoder_num_hidden_layers"], written["decoder_num_hidden_layers"]) == (3, 2)
    assert {key: value for key, value in written.items() if key not in ("dtype", "torch_dtype")} == {
        key: value for key, value in parent.items() if key not in ("dtype", "torch_dtype")
    }


SHRUNK = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 8, "d_model": 32, "d_ff": 64, "num_layers": 2, "num_heads": 4,
    "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "max_position_embeddings": 64, "embed_dim": 32, "depth": 2,
}  # fmt: skip
"""Sizes set wherever a family's default config (or a sub-config of it) has the key, as scripts/family_sweep.py
shrinks every family transformers builds."""


def _shrunk(config):
    from transformers import PretrainedConfig

    for key, value in SHRUNK.items():
        current = getattr(config, key, None)
        if isinstance(current, int) and not isinstance(current, bool):
            with contextlib.suppress(NotImplementedError):  # prophetnet's num_hidden_layers is no setting
                setattr(config, key, value)
    for value in list(vars(config).values()):
        if isinstance(value, PretrainedConfig):
            _shrunk(value)
    depth = getattr(config, "num_hidden_layers", None)
    if isinstance(getattr(config, "layer_types", None), list) and isinstance(depth, int):
        config.layer_types = config.layer_types[:depth]
    return config


@pytest.mark.parametrize(
    "model_type",
    ["pp_chart2table", "convnext", "prophetnet", "glm_image_vqmodel", "lara_mini", "gte"],
)
def test_families_the_sweep_found_refused_merge_as_transformers_loads_them(tmp_path, model_type) -> None:
    """Each was refused although transformers builds and loads it: a class its config names for another config
    (pp_chart2table), a depth key that is an alias (convnext's num_stages, prophetnet's, which a written
    num_hidden_layers would overwrite), a count of 0 layers (a VQ model), fused projections that the loader
    splits (lara_mini's in_proj, gte's qkv)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:  # a family newer than the lowest transformers allowed
        pytest.skip(f"transformers {transformers.__version__} has no {model_type}")
    config = _shrunk(transformers.AutoConfig.for_model(model_type))
    for auto in ("AutoModelForCausalLM", "AutoModelForImageTextToText", "AutoModelForSeq2SeqLM", "AutoModel"):
        try:
            model = getattr(transformers, auto).from_config(config)
            break
        except (ValueError, KeyError):
            continue
    torch.manual_seed(0)
    a, b = save_pair(model, tmp_path / "a", tmp_path / "b")
    out = run(tmp_path, f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")

    first, second, merged = (load_file(folder / "model.safetensors") for folder in (a, b, out))
    assert set(merged) == set(first)
    for name, tensor in merged.items():
        if tensor.is_floating_point():
            assert torch.allclose(tensor, (first[name] + second[name]) / 2, atol=1e-6), name


def test_a_mixture_of_experts_splits_into_router_shared_experts_and_experts(tmp_path) -> None:
    """Split by component, qwen2_moe's layers get a router column (``mlp.gate.``) and a shared-experts column
    (``shared_expert``, its gate too) before the MLP's, so each takes its own value."""
    from tui_merge.config import parse_config
    from tui_merge.engine.plan import build_plan
    from tui_merge.models.info import load_model_info
    from tui_merge.wizard.reopening import state_from_config
    from tui_merge.wizard.state import WizardState

    a, b = (str(folder) for folder in build_pair(tmp_path, "qwen2_moe"))
    infos = {name: load_model_info(name) for name in (a, b)}
    state = WizardState(models=[a, b], infos=infos, method_name="slerp", base=a)
    state.rebuild_grid()
    assert state.set_split(True) is None
    grid = state.grid
    column = {column.part.part if column.part else "rest": index for index, column in enumerate(grid.columns)}
    assert list(column) == ["attn", "router", "shared", "mlp", "rest"]
    row = {row.label: index for index, row in enumerate(grid.rows)}
    grid.set(row["layer 1"], column["router"], 0.9)
    grid.set(row["layer 1"], column["shared"], 0.2)
    grid.set(row["layer 1"], column["mlp"], 0.7)

    text = state.config_text()
    t = {task.name: task.options["t"] for task in build_plan(parse_config(text, "merge.yaml"), infos).tasks}
    assert t["model.layers.1.mlp.gate.weight"] == pytest.approx(0.9)
    assert t["model.layers.1.mlp.shared_expert.up_proj.weight"] == pytest.approx(0.2)
    assert t["model.layers.1.mlp.shared_expert_gate.weight"] == pytest.approx(0.2)
    assert t["model.layers.1.mlp.experts.2.up_proj.weight"] == pytest.approx(0.7)
    assert t["model.layers.1.self_attn.q_proj.weight"] == pytest.approx(0.5)
    assert state_from_config(parse_config(text, "merge.yaml"), infos).grid.values == grid.values


async def test_the_layers_step_edits_a_vision_tower_s_rows_with_the_keyboard(qwen2_vl) -> None:
    """Driven as a user would: the tower's rows come after the language model's, and a key there changes the
    tower's layer alone."""
    from tui_merge.models.info import load_model_info
    from tui_merge.tui.app import WizardApp
    from tui_merge.wizard.state import WizardState

    a, b = (str(folder) for folder in qwen2_vl)
    state = WizardState(models=[a, b], infos={name: load_model_info(name) for name in (a, b)}, method_name="slerp")
    app = WizardApp(state, start_step=3)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        grid = app.state.grid
        tower = next(index for index, row in enumerate(grid.rows) if row.label == "vision tower 1")
        await pilot.press(*["down"] * tower, "plus", "plus")
        await pilot.pause()
        assert grid.value(tower, 0) == pytest.approx(0.6)
        assert grid.profile(0) == [0.5, 0.5, 0.5]
        assert "- 0.60  # vision tower 1" in app.state.config_text()


def test_a_stacking_moves_a_layer_rule_s_indices_to_the_stacked_layers(tmp_path, tmp_path_factory) -> None:
    """ernie4_5_moe's experts run from moe_layer_start_index to moe_layer_end_index (the parents' last layer,
    2): stacking four layers moves the end to the output's last layer, and transformers builds them as stacked."""
    base, tuned = build_pair(tmp_path_factory.mktemp("ernie"), "ernie4_5_moe")
    parent = json.loads((base / "config.json").read_text())
    assert (parent["moe_layer_start_index"], parent["moe_layer_end_index"]) == (1, 2)

    out = run(
        tmp_path,
        f"merge_method: passthrough\nslices:\n  - sources: [{{model: {base}, layer_range: [0, 2]}}]\n"
        f"  - sources: [{{model: {tuned}, layer_range: [1, 3]}}]\n",
    )

    written = json.loads((out / "config.json").read_text())
    assert (written["num_hidden_layers"], written["moe_layer_start_index"], written["moe_layer_end_index"]) == (4, 1, 3)
    assert finite_logits(out)


def _support_table():
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "support_table.py"
    spec = importlib.util.spec_from_file_location("support_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NAMED_FAMILIES = (
    "deepseek_v2", "qwen3", "gemma3_text", "olmoe", "glm4_moe", "granitemoehybrid", "gpt2", "falcon", "roberta",
    "mamba", "modernbert", "llama4", "gemma3", "qwen2_5_vl", "qwen3_vl", "internvl", "mistral3",
)  # fmt: skip
"""The families the architectures issue names that the tests above do not build: each from the support table's
own builder."""


@pytest.mark.parametrize("name", NAMED_FAMILIES)
def test_every_named_family_merges_each_way_verifies_and_loads(tmp_path, name) -> None:
    """Linear against the mean of every tensor; slerp, ties and a stacking of layers 0-1 of one parent and 1-2 of
    the other pass verify (``run`` checks it); transformers loads the linear merge with nothing missing."""
    table = _support_table()
    builders = {family: table.causal(family) for family in table.CAUSAL} | table.others()
    torch.manual_seed(0)
    a, b = table.save_pair(builders[name](), tmp_path / "models")
    for kind, recipe in table.RECIPES.items():
        (tmp_path / kind).mkdir()
        out = run(tmp_path / kind, recipe.format(a=a, b=b))
        if kind == "linear":
            first, second, merged = (load_file(folder / "model.safetensors") for folder in (a, b, out))
            assert set(merged) == set(first)
            for tensor_name, tensor in merged.items():
                if tensor.is_floating_point():
                    expected = (first[tensor_name] + second[tensor_name]) / 2
                    assert torch.allclose(tensor, expected, atol=1e-6), (name, tensor_name)
            assert table.loads(out)
