"""Encoders merged whole: a sentence-transformers model's module files travel with the merged weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import folder_digest

from tui_merge.cli import main

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
POOLING = {"word_embedding_dimension": 16, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}


def sentence_encoder(folder: Path, seed: int, *, dense: bool = False) -> Path:
    """A small BertModel saved as sentence-transformers saves one (offline, random weights)."""
    from transformers import BertConfig, BertModel

    from tui_merge.samples import sample_tokenizer

    torch.manual_seed(0)
    config = BertConfig(vocab_size=256, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    model = BertModel(config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))  # a fine-tune of one shared start
    model.save_pretrained(folder)
    sample_tokenizer(256).save_pretrained(folder)
    modules = [*MODULES, {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}]
    (folder / "modules.json").write_text(json.dumps(modules if dense else MODULES))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {}, "similarity_fn_name": "cosine"})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(POOLING))
    if dense:
        (folder / "3_Dense").mkdir()
        (folder / "3_Dense" / "config.json").write_text(json.dumps({"in_features": 16, "out_features": 8}))
        torch.save({"linear.weight": torch.zeros(8, 16)}, folder / "3_Dense" / "pytorch_model.bin")
    return folder


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return sentence_encoder(root / "mini-encoder", 1), sentence_encoder(root / "mini-encoder-tuned", 2)


def run_linear(tmp_path: Path, first: Path, second: Path) -> int:
    config = tmp_path / "m.yaml"
    config.write_text(f"merge_method: linear\nmodels: [{{model: {first}}}, {{model: {second}}}]\n")
    return main(["run", str(config), str(tmp_path / "out")])


def test_the_module_files_are_copied_from_the_tokenizer_source_and_the_weights_merged(tmp_path, encoders) -> None:
    from safetensors.torch import load_file

    first, second = encoders
    assert run_linear(tmp_path, first, second) == 0

    out = tmp_path / "out"
    companions = ["modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                  "1_Pooling/config.json"]  # fmt: skip
    assert {name: folder_digest(out)[name] for name in companions} == {
        name: folder_digest(first)[name] for name in companions
    }
    merged, a, b = (load_file(folder / "model.safetensors") for folder in (out, first, second))
    name = "encoder.layer.0.attention.self.query.weight"
    assert torch.allclose(merged[name], 0.5 * a[name] + 0.5 * b[name], atol=1e-6)
    assert main(["verify", str(out)]) == 0


def test_a_module_with_weights_of_its_own_is_copied_and_said(tmp_path, capsys) -> None:
    first = sentence_encoder(tmp_path / "dense-a", 1, dense=True)
    second = sentence_encoder(tmp_path / "dense-b", 2, dense=True)

    assert run_linear(tmp_path, first, second) == 0
    assert (tmp_path / "out" / "3_Dense" / "pytorch_model.bin").is_file()
    assert "sentence-transformers module 3_Dense has weights of its own: copied from dense-a, not merged" in (
        capsys.readouterr().err
    )


def test_a_module_path_outside_the_model_is_refused(tmp_path, capsys, encoders) -> None:
    import shutil

    first = tmp_path / "escaping"
    shutil.copytree(encoders[0], first)
    (first / "modules.json").write_text(json.dumps([{"idx": 1, "name": "1", "path": "../../etc", "type": "x"}]))

    assert run_linear(tmp_path, first, encoders[1]) == 2
    assert "names module path '../../etc', which is not a folder inside the model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
