"""``tui-merge compare``: perplexities and continuations equal transformers' own, computed here independently."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tui_merge.cli import main


@pytest.fixture(scope="module")
def tuned_with_tokenizer(factory) -> Path:
    return factory.llama("llama-finetune-tok", finetune_seed=9, tokenizer=True)


def transformers_perplexity(folder: Path, text: str) -> tuple[float, int]:
    """exp(mean loss) with labels = input_ids, over consecutive windows of the context, from transformers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype="auto").eval()
    ids = tokenizer(text)["input_ids"]
    size = model.config.max_position_embeddings
    losses, counts = [], []
    for start in range(0, len(ids), size):
        piece = torch.tensor([ids[start : start + size]])
        if piece.shape[1] < 2:
            continue
        with torch.no_grad():
            losses.append(float(model(input_ids=piece, labels=piece).loss))
        counts.append(piece.shape[1] - 1)
    return math.exp(sum(loss * count for loss, count in zip(losses, counts)) / sum(counts)), len(ids)


def compared(capsys, *argv: str) -> dict:
    assert main(["compare", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_perplexity_of_a_short_text_is_transformers_loss(capsys, tmp_path, llama_base, tuned_with_tokenizer) -> None:
    text = tmp_path / "short.txt"
    text.write_text("Merging models averages their weights, layer by layer.")
    result = compared(capsys, str(llama_base), str(tuned_with_tokenizer), "--text", str(text))

    assert result["text"] == text.read_text()
    for entry, folder in zip(result["models"], (llama_base, tuned_with_tokenizer)):
        expected, tokens = transformers_perplexity(folder, text.read_text())
        assert entry["model"] == str(folder) and entry["tokens"] == tokens
        assert entry["perplexity"] == pytest.approx(expected, rel=1e-6)


def test_a_text_longer_than_the_context_is_scored_in_windows(capsys, llama_base) -> None:
    from transformers import AutoConfig

    from tui_merge.evaluation.sample_text import SAMPLE_TEXT

    result = compared(capsys, str(llama_base))  # the built-in sample

    expected, tokens = transformers_perplexity(llama_base, SAMPLE_TEXT)
    assert tokens > 2 * AutoConfig.from_pretrained(str(llama_base)).max_position_embeddings  # several windows
    assert result["models"][0]["perplexity"] == pytest.approx(expected, rel=1e-6)
    assert result["models"][0]["tokens"] == tokens


def test_prompts_are_continued_greedily_by_each_model(capsys, llama_base, tuned_with_tokenizer) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompt = "the quick brown"
    result = compared(capsys, str(llama_base), str(tuned_with_tokenizer), "--prompt", prompt, "--max-new-tokens", "5")

    continuations = result["prompts"][0]["continuations"]
    assert result["prompts"][0]["prompt"] == prompt
    for folder in (llama_base, tuned_with_tokenizer):
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype="auto").eval()
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        output = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        assert continuations[str(folder)] == tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


def test_models_that_cannot_be_scored_are_skipped_and_said(capsys, tmp_path, llama_base, llama_finetune) -> None:
    from transformers import BertConfig, BertModel

    encoder = tmp_path / "encoder"
    BertModel(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(encoder)  # fmt: skip
    result = compared(capsys, str(llama_base), str(encoder), str(llama_finetune))

    skipped = {entry["model"]: entry.get("skipped") for entry in result["models"]}
    assert skipped[str(encoder)] == "BertModel has no language-model head, so it has no next-token perplexity"
    assert skipped[str(llama_finetune)] == "it has no tokenizer files, so the text cannot be tokenized for it"
    assert result["models"][1]["perplexity"] is None and result["models"][0]["perplexity"] > 1

    assert main(["compare", str(llama_base), str(encoder)]) == 0
    out = capsys.readouterr().out
    assert "skipped: BertModel" in out and "lowest" not in out  # one model scored: nothing to rank


def test_the_table_marks_the_lowest_perplexity(capsys, llama_base, tuned_with_tokenizer) -> None:
    result = compared(capsys, str(llama_base), str(tuned_with_tokenizer))
    lowest = min(result["models"], key=lambda entry: entry["perplexity"])["model"]

    assert main(["compare", str(llama_base), str(tuned_with_tokenizer)]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = [line for line in lines if line.rstrip().endswith("lowest")]
    assert len(marked) == 1 and marked[0].startswith(Path(lowest).name + " ")  # titled by name, as Try does


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, got 0"),
        (["--text", "{tmp}/missing.txt"], "missing.txt does not exist"),
        (["--text", "{tmp}/empty.txt"], "is empty; give a text to score"),
        (["{model}+{tmp}"], "names a LoRA adapter; compare loads models with transformers"),
        (["./nowhere"], "Model folder ./nowhere does not exist"),
    ],
)
def test_bad_input_is_one_sentence(capsys, tmp_path, llama_base, extra, expected) -> None:
    (tmp_path / "empty.txt").write_text("  \n")
    (tmp_path / "adapter_config.json").write_text("{}")
    argv = [part.format(tmp=tmp_path, model=llama_base) for part in extra]

    assert main(["compare", str(llama_base), *argv]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_models_are_titled_by_name_with_the_parent_where_two_names_agree(tmp_path) -> None:
    from tui_merge.cli.compare_cmd import short_names

    first, second = str(tmp_path / "run-a" / "checkpoint-500"), str(tmp_path / "run-b" / "checkpoint-500")
    merged = str(tmp_path / "merged")

    assert short_names([merged, first, second, "org/model"]) == {
        merged: "merged", first: "run-a/checkpoint-500", second: "run-b/checkpoint-500", "org/model": "org/model",
    }  # fmt: skip


def test_compare_says_when_models_are_the_demo_s_untrained_samples(capsys, tmp_path, llama_base) -> None:
    from tui_merge.samples import build_demo_models

    base, _, _ = build_demo_models(tmp_path)

    assert main(["compare", str(base), str(llama_base)]) == 0
    out = capsys.readouterr().out
    assert "note: demo-base is one of tui-merge demo's untrained sample models" in out.replace("\n", " ")
    assert "llama-base is" not in out
    assert main(["compare", str(llama_base)]) == 0
    assert "note:" not in capsys.readouterr().out
