"""Vocabulary mismatches: truncate, pad, union and matching rows by token, each checked row by row.

Expected rows are computed here from the input files and the tokenizers'
token strings, not by the alignment code under test.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tui_merge.config import parse_config
from tui_merge.engine.executor import execute
from tui_merge.engine.plan import build_plan
from tui_merge.engine.prepare import inspect_models
from tui_merge.errors import BadInputError

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"
ADDED = ["<|im_start|>", "<|im_end|>", "<tool>", "</tool>"]


def merge(tmp_path: Path, text: str, **models: Path) -> Path:
    config = textwrap.dedent(text).format(**{key: str(path) for key, path in models.items()})
    loaded = parse_config(config, "merge.yaml")
    out = tmp_path / "out"
    execute(build_plan(loaded, inspect_models(loaded)), out)
    return out


def plan_of(text: str, **models: Path):
    loaded = parse_config(textwrap.dedent(text).format(**{key: str(path) for key, path in models.items()}), "m.yaml")
    return build_plan(loaded, inspect_models(loaded))


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return {name: tensor.float() for name, tensor in load_file(folder / "model.safetensors").items()}


def vocabulary(folder: Path) -> dict[str, int]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder)).get_vocab()


LINEAR = """\
merge_method: linear
models:
  - model: {a}
  - model: {b}
parameters:
  weight: 0.5
"""


def test_truncate_cuts_to_the_base_rows(tmp_path, llama_base, llama_chat_tokens) -> None:
    text = LINEAR + "base_model: {a}\ntui_merge: {{vocab: truncate}}\n"
    out = merge(tmp_path, text, a=llama_base, b=llama_chat_tokens)

    a, b, merged = weights(llama_base), weights(llama_chat_tokens), weights(out)
    for name in (EMBED, HEAD):
        assert torch.allclose(merged[name], 0.5 * a[name] + 0.5 * b[name][:256], atol=1e-6)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 256
    assert len(vocabulary(out)) == 256  # the base's tokenizer: no id past the rows


def test_pad_grows_with_each_matrix_mean_row_never_zeros(tmp_path, llama_base, llama_chat_tokens) -> None:
    out = merge(tmp_path, LINEAR + "tui_merge: {{vocab: pad}}\n", a=llama_base, b=llama_chat_tokens)

    a, b, merged = weights(llama_base), weights(llama_chat_tokens), weights(out)
    for name in (EMBED, HEAD):
        grown = torch.cat([a[name], a[name].mean(dim=0, keepdim=True).expand(4, -1)])
        assert torch.allclose(merged[name], 0.5 * grown + 0.5 * b[name], atol=1e-6)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 260


@pytest.mark.parametrize("strategy", ["pad", "union"])
def test_slerp_after_filling_rows_stays_finite(tmp_path, llama_base, llama_chat_tokens, strategy) -> None:
    text = "merge_method: slerp\nbase_model: {a}\nmodels: [{{model: {a}}}, {{model: {b}}}]\nparameters: {{t: 0.5}}\n"
    out = merge(tmp_path, text + f"tui_merge: {{{{vocab: {strategy}}}}}\n", a=llama_base, b=llama_chat_tokens)

    assert all(bool(torch.isfinite(tensor).all()) for tensor in weights(out).values())


def test_union_matches_rows_by_token_and_writes_the_union_tokenizer(tmp_path, llama_base, llama_chat_tokens) -> None:
    out = merge(tmp_path, LINEAR + "tokenizer_source: union\n", a=llama_base, b=llama_chat_tokens)

    a, b, merged = weights(llama_base), weights(llama_chat_tokens), weights(out)
    ids_a, ids_b, ids_out = vocabulary(llama_base), vocabulary(llama_chat_tokens), vocabulary(out)
    assert len(ids_out) == 260 and all(ids_out[token] == index for token, index in ids_a.items())
    for name in (EMBED, HEAD):
        for token, row in ids_out.items():
            # A token the base lacks comes, in the base's place, from the only model that has it.
            row_a = a[name][ids_a[token]] if token in ids_a else b[name][ids_b[token]]
            expected = 0.5 * row_a + 0.5 * b[name][ids_b[token]]
            assert torch.allclose(merged[name][row], expected, atol=1e-6), (name, token)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 260


def test_union_output_loads_and_round_trips_a_sentence(tmp_path, llama_base, llama_chat_tokens) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge(tmp_path, LINEAR + "base_model: {a}\ntui_merge: {{vocab: union}}\n", a=llama_base, b=llama_chat_tokens)

    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out))
    sentence = "<|im_start|>Merging models averages their weights.<|im_end|>"
    ids = tokenizer(sentence)["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") == 256
    assert tokenizer.decode(ids).replace(" ", "") == sentence.replace(" ", "")
    assert max(ids) < model.get_input_embeddings().weight.shape[0]
    generated = model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == len(ids) + 3
    added = tokenizer.added_tokens_decoder
    assert (added[257].content, added[257].special, added[258].content, added[258].special) == (
        "<|im_end|>",
        True,
        "<tool>",
        False,
    )


def expected_union_row(token: str, owners: dict[str, tuple[dict[str, int], torch.Tensor]], model: str, base: str):
    """The row ``model`` contributes for ``token``: its own, else the base's, else the mean of those that have it."""
    ids, matrix = owners[model]
    if token in ids:
        return matrix[ids[token]]
    base_ids, base_matrix = owners[base]
    if token in base_ids:
        return base_matrix[base_ids[token]]
    having = [matrix[ids[token]] for ids, matrix in owners.values() if token in ids]
    return torch.stack(having).mean(dim=0)


@pytest.mark.parametrize("method", ["task_arithmetic", "linear"])
def test_union_fills_a_missing_row_from_the_base_first(tmp_path, llama_base, llama_chat_tokens, factory, method):
    """An older fine-tune lacks the base's last two tokens (the base's rows fill in) and brings two at their ids
    that the others lack (their mean, here its own row, fills in); the chat tokens exist in one model only."""
    older = factory.llama_tokens("llama-older", finetune_seed=6, trained=254, added=("<legacy_a>", "<legacy_b>"))
    text = f"""\
    merge_method: {method}
    base_model: {{a}}
    models:
      - model: {{b}}
        parameters: {{{{weight: 0.6}}}}
      - model: {{c}}
        parameters: {{{{weight: 0.4}}}}
    tokenizer_source: union
    """
    out = merge(tmp_path, text, a=llama_base, b=older, c=llama_chat_tokens)

    merged, ids_out = weights(out), vocabulary(out)
    assert {"<legacy_a>", "<legacy_b>", *ADDED} <= set(ids_out) and len(ids_out) == 262
    for name in (EMBED, HEAD):
        owners = {
            model: (vocabulary(folder), weights(folder)[name])
            for model, folder in (("a", llama_base), ("b", older), ("c", llama_chat_tokens))
        }
        for token, row in ids_out.items():
            base, old, chat = (expected_union_row(token, owners, model, "a") for model in ("a", "b", "c"))
            if method == "task_arithmetic":
                expected = base + 0.6 * (old - base) + 0.4 * (chat - base)
            else:
                expected = (0.6 * old + 0.4 * chat) / 1.0
            assert torch.allclose(merged[name][row], expected, atol=1e-5), (method, name, token)


def test_same_size_different_order_merges_by_token_with_tokenizer_source(tmp_path, llama_base, llama_reordered) -> None:
    out = merge(tmp_path, LINEAR + "tokenizer_source: base\n", a=llama_base, b=llama_reordered)

    a, b, merged = weights(llama_base), weights(llama_reordered), weights(out)
    ids_a, ids_b = vocabulary(llama_base), vocabulary(llama_reordered)
    moved = [token for token, index in ids_b.items() if ids_a[token] != index]
    assert len(moved) == 6
    for name in (EMBED, HEAD):
        for token in moved:
            expected = 0.5 * a[name][ids_a[token]] + 0.5 * b[name][ids_b[token]]
            assert torch.allclose(merged[name][ids_a[token]], expected, atol=1e-6)
        # The reordered model is the base plus small deltas under another numbering: aligned, rows stay close.
        assert (merged[name] - a[name]).abs().max() < 0.2


def test_same_size_different_order_without_a_fix_is_a_warning(llama_base, llama_reordered) -> None:
    plan = plan_of(LINEAR, a=llama_base, b=llama_reordered)

    assert plan.vocabulary.alignment is None
    assert any("6 tokens sit at other ids" in note for note in plan.vocabulary.notes)


def test_tokenizer_from_another_model_sets_its_special_ids(tmp_path, llama_base, llama_chat_tokens) -> None:
    out = merge(tmp_path, LINEAR + "base_model: {a}\ntokenizer_source: model:{b}\n", a=llama_base, b=llama_chat_tokens)

    config = json.loads((out / "config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert config["eos_token_id"] == generation["eos_token_id"] == 257
    assert config["vocab_size"] == 260


def test_a_tokenizer_larger_than_the_rows_is_refused(llama_base, llama_chat_tokens) -> None:
    text = LINEAR + "base_model: {a}\ntokenizer_source: model:{b}\ntui_merge: {{vocab: truncate}}\n"
    expected = "has token ids up to 259, but the merged embedding has only 256 rows"
    with pytest.raises(BadInputError, match=re.escape(expected)):
        plan_of(text, a=llama_base, b=llama_chat_tokens)


def test_union_needs_every_tokenizer(llama_base, llama_vocab_plus) -> None:
    with pytest.raises(BadInputError, match="llama-vocab260 has none"):
        plan_of(LINEAR + "tui_merge: {{vocab: union}}\n", a=llama_base, b=llama_vocab_plus)


def test_union_and_another_tokenizer_source_contradict(llama_base, llama_chat_tokens) -> None:
    text = LINEAR + "tokenizer_source: model:{b}\ntui_merge: {{vocab: union}}\n"
    with pytest.raises(BadInputError, match="contradicts tui_merge.vocab: union"):
        plan_of(text, a=llama_base, b=llama_chat_tokens)


def test_cli_mismatch_without_a_strategy_is_one_sentence_and_exit_2(tmp_path, llama_base, llama_chat_tokens) -> None:
    import subprocess
    import sys

    config = tmp_path / "merge.yaml"
    config.write_text(LINEAR.format(a=llama_base, b=llama_chat_tokens))
    result = subprocess.run(
        [sys.executable, "-m", "tui_merge", "run", str(config), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "llama-base has 256, llama-chat260 has 260 rows" in result.stderr
    assert "truncate" in result.stderr and "pad" in result.stderr and "union" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_align_rows_fill_order_on_hand_made_sources() -> None:
    from tui_merge.vocab.alignment import MISSING, VocabAlignment, align_rows

    generator = torch.Generator().manual_seed(0)
    base, first, second = (torch.randn(3, 4, generator=generator) for _ in range(3))
    alignment = VocabAlignment(
        rows=4,
        sources={
            "base": (0, MISSING, 2, MISSING),
            "first": (MISSING, 0, 1, MISSING),
            "second": (2, 1, MISSING, MISSING),
        },
        base="base",
    )
    aligned_base, aligned_first, aligned_second = align_rows(
        [("base", base), ("first", first), ("second", second)], alignment
    )

    # row 0: first lacks it, the base has it -> the base's row
    assert torch.equal(aligned_first[0], base[0])
    # row 1: the base lacks it -> the mean of first and second, which have it
    assert torch.allclose(aligned_base[1], (first[0] + second[1]) / 2)
    # row 2: second lacks it, the base has it
    assert torch.equal(aligned_second[2], base[2])
    # row 3: nobody has it -> each matrix's own mean row, never zeros
    for aligned, matrix in ((aligned_base, base), (aligned_first, first), (aligned_second, second)):
        assert torch.allclose(aligned[3], matrix.mean(dim=0))
    assert torch.equal(aligned_first[2], first[1]) and torch.equal(aligned_second[0], second[2])


def test_the_model_with_a_special_tokens_map_gives_the_tokenizer(tmp_path, factory, llama_base, llama_reordered):
    chat = factory.damaged("reordered-with-map", llama_reordered)
    (chat / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>", "bos_token": "<s>"}))

    out = merge(tmp_path, LINEAR + "base_model: {a}\n", a=llama_base, b=chat)

    assert (out / "tokenizer.json").read_bytes() == (chat / "tokenizer.json").read_bytes()
    assert (out / "special_tokens_map.json").is_file()


def test_an_unreadable_tokenizer_is_one_sentence_naming_its_folder(factory, llama_base, llama_chat_tokens) -> None:
    broken = factory.damaged("chat-broken-tokenizer", llama_chat_tokens)
    (broken / "tokenizer.json").write_text("{not json")

    with pytest.raises(BadInputError, match=f"The tokenizer in {re.escape(str(broken))} cannot be read"):
        plan_of(LINEAR + "tui_merge: {{vocab: union}}\n", a=llama_base, b=broken)
