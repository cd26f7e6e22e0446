"""mergekit's ``chat_template`` key: a name, ``auto`` or a Jinja template, read back through transformers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tui_merge.cli import main

LINEAR = "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def merged_tokenizer(tmp_path: Path, extra: str, a: Path, b: Path):
    from transformers import AutoTokenizer

    config = tmp_path / "m.yaml"
    config.write_text(LINEAR.format(a=a, b=b) + extra)
    assert main(["run", str(config), str(tmp_path / "out")]) == 0
    return AutoTokenizer.from_pretrained(str(tmp_path / "out"))


@pytest.mark.parametrize(
    ("name", "rendered"),
    [
        ("chatml", "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"),
        (
            "llama3",
            "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        ("alpaca", "Be brief.\n\n### Instruction:\nHi\n\n### Response:\n"),
        ("exaone", "[|system|]Be brief.[|endofturn|]\n[|user|]Hi\n[|assistant|]"),
    ],
)
def test_a_named_template_is_written_as_transformers_reads_it(tmp_path, llama_base, llama_finetune, name, rendered):
    tokenizer = merged_tokenizer(tmp_path, f"chat_template: {name}\n", llama_base, llama_finetune)

    assert tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True) == rendered
    assert (tmp_path / "out" / "chat_template.jinja").is_file()


def test_mistral_wraps_user_turns_and_ends_answers(tmp_path, llama_base, llama_finetune) -> None:
    tokenizer = merged_tokenizer(tmp_path, "chat_template: mistral\n", llama_base, llama_finetune)
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]

    assert tokenizer.apply_chat_template(turns, tokenize=False) == "<s>[INST] Hi [/INST]Hello</s>"


def test_a_jinja_template_is_taken_as_it_is(tmp_path, llama_base, llama_finetune) -> None:
    template = "{% for message in messages %}<{{ message['role'] }}>{{ message['content'] }}{% endfor %}"
    tokenizer = merged_tokenizer(tmp_path, f'chat_template: "{template}"\n', llama_base, llama_finetune)

    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == "<system>Be brief.<user>Hi"


def test_auto_takes_the_template_most_inputs_ship(tmp_path, factory, llama_base, llama_finetune) -> None:
    shipped = tmp_path / "with-template"
    shutil.copytree(llama_finetune, shipped)
    (shipped / "chat_template.jinja").write_text("{% for message in messages %}[{{ message['content'] }}]{% endfor %}")
    tokenizer = merged_tokenizer(tmp_path, "chat_template: auto\n", llama_base, shipped)

    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == "[Be brief.][Hi]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "chatlm",
            "chat_template: 'chatlm' is neither a template name, auto, nor a Jinja template; did you mean 'chatml'?",
        ),
        (
            '"{% for message in messages %}{{ message }}"',
            "the chat template is not valid Jinja (line 1 of the template:",
        ),
    ],
)
def test_a_bad_template_is_one_sentence_before_anything_is_written(
    tmp_path, capsys, llama_base, llama_finetune, value, expected
) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(LINEAR.format(a=llama_base, b=llama_finetune) + f"chat_template: {value}\n")

    assert main(["run", str(config), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_a_template_in_tokenizer_config_is_read_and_replaced(tmp_path) -> None:
    import json

    from tui_merge.vocab.chat_template import model_chat_template, write_chat_template

    settings = {"chat_template": [{"name": "tool_use", "template": "{{ 'tools' }}"}, {"name": "default",
                "template": " {{ 'old' }} "}], "eos_token": "</s>"}  # fmt: skip
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(settings))
    assert model_chat_template(tmp_path) == "{{ 'old' }}"

    write_chat_template(tmp_path, "{{ 'new' }}")
    assert json.loads((tmp_path / "tokenizer_config.json").read_text()) == {
        "chat_template": "{{ 'new' }}",
        "eos_token": "</s>",
    }
    assert model_chat_template(tmp_path) == "{{ 'new' }}"  # chat_template.jinja, as transformers prefers it
