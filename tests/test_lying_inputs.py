"""Inputs whose config.json or tokenizer lie about their tensors: the output always describes its own tensors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model_factory import edited_copy
from tui_merge.cli import main

HEAD, EMBEDDING = "lm_head.weight", "model.embed_tokens.weight"


def copies(tmp_path: Path, sources: list[Path], edit) -> list[Path]:
    """Copies of ``sources`` with ``edit(config, weights)`` applied to each."""
    return [edited_copy(source, tmp_path / source.name, edit) for source in sources]


def merge(tmp_path: Path, a: Path, b: Path, extra: str = "") -> tuple[int, str]:
    recipe = tmp_path / "merge.yaml"
    recipe.write_text(f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n{extra}")
    return main(["run", str(recipe), str(tmp_path / "out")]), str(recipe)


def test_a_config_that_says_tied_beside_a_head_of_its_own_is_corrected_and_the_head_kept(
    tmp_path, capsys, llama_base, llama_finetune
) -> None:
    from transformers import AutoModelForCausalLM

    a, b = copies(
        tmp_path, [llama_base, llama_finetune], lambda config, weights: config.update(tie_word_embeddings=True)
    )
    assert not torch.equal(load_file(a / "model.safetensors")[HEAD], load_file(a / "model.safetensors")[EMBEDDING])

    status, _ = merge(tmp_path, a, b)

    assert status == 0
    err = capsys.readouterr().err
    assert f"{a / 'config.json'} says tie_word_embeddings: true, but {HEAD} differs from {EMBEDDING}" in err
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is False
    merged_head = load_file(tmp_path / "out" / "model.safetensors")[HEAD]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert torch.equal(model.lm_head.weight.detach(), merged_head)  # the merged head, not the embedding
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_a_config_that_says_untied_without_a_head_is_corrected_to_tied(
    tmp_path, capsys, llama_base, llama_finetune
) -> None:
    from transformers import AutoModelForCausalLM

    def headless(config: dict, weights: dict) -> None:
        config["tie_word_embeddings"] = False
        del weights[HEAD]

    a, b = copies(tmp_path, [llama_base, llama_finetune], headless)

    status, _ = merge(tmp_path, a, b)

    assert status == 0
    assert "says tie_word_embeddings: false, but the weights store no head" in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is True
    model, info = AutoModelForCausalLM.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"]
    assert torch.equal(model.lm_head.weight.detach(), load_file(tmp_path / "out" / "model.safetensors")[EMBEDDING])


def test_an_honest_tied_config_is_left_alone(tmp_path, capsys, llama_base, llama_finetune) -> None:
    def tied(config: dict, weights: dict) -> None:
        config["tie_word_embeddings"] = True
        weights[HEAD] = weights[EMBEDDING].clone()  # stored twice, as some exports do: still one matrix

    a, b = copies(tmp_path, [llama_base, llama_finetune], tied)

    assert merge(tmp_path, a, b)[0] == 0
    assert "tie_word_embeddings" not in capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is True


@pytest.mark.parametrize("where", ["added_tokens", "added_tokens_decoder"])
def test_an_added_token_with_an_id_far_beyond_the_vocabulary_never_gets_a_row_it_lacks(
    tmp_path, capsys, llama_base, llama_chat_tokens, where
) -> None:
    """Under the union tokenizer, whatever the lying file says, every id of the output's tokenizer has a row."""
    from transformers import AutoTokenizer

    liar = tmp_path / "liar"
    shutil.copytree(llama_chat_tokens, liar)
    token = {"id": 1_000_000, "content": "<far>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False}  # fmt: skip
    tokenizer = json.loads((liar / "tokenizer.json").read_text())
    tokenizer["added_tokens"].append(token)
    (liar / "tokenizer.json").write_text(json.dumps(tokenizer))
    if where == "added_tokens_decoder":
        settings = json.loads((liar / "tokenizer_config.json").read_text())
        settings.setdefault("added_tokens_decoder", {})["1000000"] = {k: v for k, v in token.items() if k != "id"}
        (liar / "tokenizer_config.json").write_text(json.dumps(settings))

    status, _ = merge(tmp_path, llama_base, liar, "tokenizer_source: union\n")

    err = capsys.readouterr().err
    if status == 2:  # refused: the sentence names the token
        assert "<far>" in err and "1000000" in err, err
        return
    assert status == 0, err
    rows = load_file(tmp_path / "out" / "model.safetensors")[EMBEDDING].shape[0]
    output = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert max(output.get_vocab().values()) < rows
    assert json.loads((tmp_path / "out" / "config.json").read_text())["vocab_size"] == rows
