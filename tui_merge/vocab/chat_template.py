"""mergekit's ``chat_template`` key: the chat template written into the output tokenizer.

The value is one of:

- a name of a common format: ``chatml``, ``llama3``, ``mistral``, ``alpaca``
  or ``exaone`` (``TEMPLATES``, written here for these formats);
- ``auto``: the template most of the input models ship (the first of equally
  common ones); none at all keeps the output tokenizer's own, with a note;
- a Jinja template itself, checked by compiling it as transformers does
  (a sandboxed Jinja environment), so a syntax error is found while
  planning, with its line, and not by the first person who chats with the
  merge.

The template is written as transformers reads it: ``chat_template.jinja``
beside the tokenizer files, and in ``tokenizer_config.json`` too when that
file has a ``chat_template`` key (so no reader finds the old one).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tui_merge.errors import BadInputError

TEMPLATES: dict[str, str] = {
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
        " + '<|eot_id|>' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "mistral": (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% else %}{{ message['content'] + '\\n\\n' }}{% endif %}"
        "{% endfor %}"
    ),
    "alpaca": (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] + '\\n\\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] + eos_token + '\\n\\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}"
    ),
    "exaone": (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ '[|system|]' + message['content'] + '[|endofturn|]\\n' }}"
        "{% elif message['role'] == 'user' %}{{ '[|user|]' + message['content'] + '\\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ '[|assistant|]' + message['content'] + '[|endofturn|]\\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}"
    ),
}
"""Templates for the formats recipes name, by the names mergekit gives them."""

JINJA_FILE = "chat_template.jinja"


def resolve_chat_template(value: str, where: str, folders: list[Path]) -> tuple[str | None, str | None]:
    """The template ``value`` (from ``where`` in the config) stands for, over the input models in ``folders``;
    and a note for the log when ``auto`` finds none. BadInputError when it is neither a name nor a template."""
    if value == "auto":
        found = [template for folder in folders if (template := model_chat_template(folder))]
        if not found:
            return None, "chat_template: auto, but no input model has a chat template; the tokenizer's own is kept"
        return Counter(found).most_common(1)[0][0], None
    if value in TEMPLATES:
        return TEMPLATES[value], None
    if "{" not in value:
        from tui_merge.config.loading import sentence_end
        from tui_merge.errors import suggestion

        hint = suggestion(value, [*TEMPLATES, "auto"])
        raise BadInputError(
            f"{where}: {value!r} is neither a template name, auto, nor a Jinja template{sentence_end(hint)}"
        )
    _check_jinja(value, where)
    return value, None


def model_chat_template(folder: Path) -> str | None:
    """The chat template a model's tokenizer files carry (``chat_template.jinja``, else tokenizer_config.json's
    default one), stripped; None when there is none or the files cannot be read."""
    jinja = folder / JINJA_FILE
    if jinja.is_file():
        try:
            return jinja.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError):
            return None
    try:
        settings = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    template = settings.get("chat_template") if isinstance(settings, dict) else None
    if isinstance(template, list):  # named templates: the default one
        template = next((item.get("template") for item in template
                         if isinstance(item, dict) and item.get("name") == "default"), None)  # fmt: skip
    return template.strip() or None if isinstance(template, str) else None


def write_chat_template(folder: Path, template: str) -> None:
    """Put ``template`` into the tokenizer files in ``folder`` as transformers reads them."""
    (folder / JINJA_FILE).write_text(template, encoding="utf-8")
    settings_path = folder / "tokenizer_config.json"
    if settings_path.is_file():
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        if isinstance(settings, dict) and "chat_template" in settings:
            settings["chat_template"] = template
            settings_path.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _check_jinja(template: str, where: str) -> None:
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    try:
        ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(template)
    except TemplateSyntaxError as error:
        raise BadInputError(
            f"{where}: the chat template is not valid Jinja (line {error.lineno} of the template: {error.message})."
        ) from None
