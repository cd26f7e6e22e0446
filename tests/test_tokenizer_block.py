"""mergekit's ``tokenizer:`` block and bare ``tokenizer_source`` models: rows checked against formulas written here.

The expected rows come from the input files and the tokenizers' own token
strings (read with transformers), never from the alignment code under test.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import folder_digest
from test_vocab import LINEAR, vocabulary, weights

from tui_merge.cli import main

EMBED, HEAD = "model.embed_tokens.weight", "lm_head.weight"


def run(tmp_path: Path, text: str, name: str = "out", **models: Path) -> Path:
    config = tmp_path / f"{name}.yaml"
    config.write_text(textwrap.dedent(text).format(**{key: str(path) for key, path in models.items()}))
    assert main(["run", str(config), str(tmp_path / name)]) == 0
    return tmp_path / name


def test_a_tokenizer_block_with_source_union_is_tokenizer_source_union(tmp_path, llama_base, llama_chat_tokens):
    block = run(tmp_path, LINEAR + "tokenizer: {{source: union}}\n", "block", a=llama_base, b=llama_chat_tokens)
    default = run(tmp_path, LINEAR + "tokenizer: {{}}\n", "default", a=llama_base, b=llama_chat_tokens)
    plain = run(tmp_path, LINEAR + "tokenizer_source: union\n", "plain", a=llama_base, b=llama_chat_tokens)

    assert weights(block).keys() == weights(plain).keys()
    for name in weights(plain):
        assert torch.equal(weights(block)[name], weights(plain)[name])
        assert torch.equal(weights(default)[name], weights(plain)[name])
    assert vocabulary(block) == vocabulary(plain)


def test_tokens_name_where_rows_come_from(tmp_path, llama_base, llama_chat_tokens) -> None:
    text = LINEAR + textwrap.dedent("""\
        tokenizer:
          source: union
          tokens:
            "<|im_start|>": {{source: {{kind: zero}}}}
            "<|im_end|>": {{source: {{kind: model_token, model: {b}, token: "</s>"}}}}
            "<s>": {{source: {b}, force: true}}
            "</s>": {{source: {{kind: model_token, model: {a}, token_id: 5}}, force: true}}
            "<not-a-token>": {{source: {a}}}
        """)
    out = run(tmp_path, text, a=llama_base, b=llama_chat_tokens)

    a, b, merged = weights(llama_base), weights(llama_chat_tokens), weights(out)
    ids_a, ids_b, ids_out = vocabulary(llama_base), vocabulary(llama_chat_tokens), vocabulary(out)
    for name in (EMBED, HEAD):
        row = {token: merged[name][index] for token, index in ids_out.items()}
        # The base lacks <|im_start|>: a zero row in its place; the fine-tune keeps its own (no force).
        assert torch.allclose(row["<|im_start|>"], 0.5 * b[name][ids_b["<|im_start|>"]], atol=1e-6)
        # The base lacks <|im_end|>: the fine-tune's </s> row in its place.
        expected = 0.5 * b[name][ids_b["</s>"]] + 0.5 * b[name][ids_b["<|im_end|>"]]
        assert torch.allclose(row["<|im_end|>"], expected, atol=1e-6)
        # Forced: every model takes the named row, so the merge is that row.
        assert torch.allclose(row["<s>"], b[name][ids_b["<s>"]], atol=1e-6)
        assert torch.allclose(row["</s>"], a[name][5], atol=1e-6)
        # A token nobody named: the plain union rule (the fine-tune's row where the base lacks it).
        assert torch.allclose(row["<tool>"], b[name][ids_b["<tool>"]], atol=1e-6)
        assert torch.allclose(row["a"], 0.5 * a[name][ids_a["a"]] + 0.5 * b[name][ids_b["a"]], atol=1e-6)


def test_pad_to_multiple_of_rounds_the_rows_up_with_each_models_mean_row(tmp_path, llama_base, llama_chat_tokens):
    """mergekit 0.1.5 (``tokenizer/embed.py``) builds each model's matrix in the output's token order, the rows a
    model lacks taken from the one model that has them, then sets every padding row to the mean of that
    model's first rows, one per token, in the stored dtype; the merge method then merges those rows."""
    out = run(tmp_path, LINEAR + "tokenizer: {{source: union, pad_to_multiple_of: 64}}\n", a=llama_base,
              b=llama_chat_tokens)  # fmt: skip

    a, b, merged = weights(llama_base), weights(llama_chat_tokens), weights(out)
    ids_a, ids_b, ids_out = vocabulary(llama_base), vocabulary(llama_chat_tokens), vocabulary(out)
    assert merged[EMBED].shape[0] == merged[HEAD].shape[0] == 320 and len(ids_out) == 260
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 320
    in_order = sorted(ids_out, key=ids_out.__getitem__)
    assert any(token not in ids_a for token in in_order)  # the base lacks the chat tokens: their rows count too
    for name in (EMBED, HEAD):
        aligned_a = torch.stack([a[name][ids_a[t]] if t in ids_a else b[name][ids_b[t]] for t in in_order])
        aligned_b = torch.stack([b[name][ids_b[t]] for t in in_order])
        expected = 0.5 * aligned_a.mean(dim=0) + 0.5 * aligned_b.mean(dim=0)
        assert torch.allclose(merged[name][260:], expected.expand(60, -1), atol=1e-7)
    assert main(["verify", str(out)]) == 0


def test_a_bare_tokenizer_source_path_is_that_models_tokenizer(tmp_path, monkeypatch, llama_base, llama_reordered):
    bare = run(tmp_path, LINEAR + "tokenizer_source: {b}\n", "bare", a=llama_base, b=llama_reordered)
    prefixed = run(tmp_path, LINEAR + "tokenizer_source: model:{b}\n", "prefixed", a=llama_base, b=llama_reordered)
    monkeypatch.chdir(llama_reordered.parent)
    relative = run(tmp_path, LINEAR + f"tokenizer_source: ./{llama_reordered.name}\n", "relative", a=llama_base,
                   b=llama_reordered)  # fmt: skip

    for folder in (bare, relative):
        digest, expected = folder_digest(folder), folder_digest(prefixed)
        assert {key: value for key, value in digest.items() if key not in ("tui_merge_config.yaml", "README.md",
                "tui_merge_manifest.json")} == {key: value for key, value in expected.items() if key not in (
                "tui_merge_config.yaml", "README.md", "tui_merge_manifest.json")}  # fmt: skip
    assert vocabulary(bare) == vocabulary(llama_reordered)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("tokens: {{'<s>': {{source: /nowhere}}}}", "tokenizer.tokens.<s>: /nowhere is not one of the merged models"),
        (
            "tokens: {{'<s>': {{source: {{kind: model_token, model: {b}, token: '<nope>'}}}}}}",
            "the tokenizer of {b} has no token '<nope>'",
        ),
        (
            "tokens: {{'<s>': {{source: {{kind: model_token, model: {a}, token_id: 9999}}}}}}",
            "row 9999 is past the 256 rows of {a}",
        ),
        ("tokens: {{'<s>': {{force: true}}}}", "give the token a source"),
        ("source: /nowhere/at-all", "tokenizer.source: /nowhere/at-all is neither base nor union nor a model here"),
    ],
)
def test_bad_token_settings_are_one_sentence_naming_the_key(
    tmp_path, capsys, llama_base, llama_chat_tokens, block, expected
) -> None:
    names = {"a": str(llama_base), "b": str(llama_chat_tokens)}
    config = tmp_path / "m.yaml"
    config.write_text((LINEAR + f"tokenizer: {{{{{block}}}}}\n").format(**names))

    assert main(["run", str(config), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected.format(**names) in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_block_contradicts_a_positional_vocab_strategy(tmp_path, capsys, llama_base, llama_chat_tokens):
    config = tmp_path / "m.yaml"
    config.write_text(
        LINEAR.format(a=llama_base, b=llama_chat_tokens) + "tokenizer: {source: base}\ntui_merge: {vocab: pad}\n"
    )

    assert main(["run", str(config), str(tmp_path / "out")]) == 2
    assert (
        "the tokenizer: block matches rows by token, so it contradicts tui_merge.vocab: pad" in capsys.readouterr().err
    )
