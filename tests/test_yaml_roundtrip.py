"""Every name a config holds reads back as the same text: template -> run -> saved recipe -> wizard reopen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tui_merge.cli import main
from tui_merge.config.rendering import scalar
from tui_merge.models.info import load_model_info
from tui_merge.wizard.reopening import load_state
from tui_merge.wizard.state import WizardState

TRICKY_TEXTS = [
    "yes", "No", "on", "OFF", "null", "~", "true", ".5", "1e3", "0o17", "0x1F", "1_000", "+1", "-", "#x", "",
    " leading", "trailing ", "a: b", "a #b", "it's \"quoted\"", "modèle-日本語", "[x]", "{x}", "*alias", "&anchor",
    "!tag", "%percent", "@at", "`tick", "|", ">", "? x", "- x", "2001-12-14", "<<", "line\nbreak", "tab\there",
    "x" * 300,
]  # fmt: skip


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_every_tricky_text_reads_back_as_itself(text: str) -> None:
    line = f"key: {scalar(text)}"

    assert "\n" not in line
    assert yaml.safe_load(line) == {"key": text}


@given(st.text())
def test_any_text_reads_back_as_itself(text: str) -> None:
    assert yaml.safe_load(f"key: {scalar(text)}  # comment") == {"key": text}


@pytest.mark.parametrize("value", [0.0, 0.5, 1e-5, 123456.0, -2.5, 3, True, False])
def test_numbers_and_switches_read_back_as_themselves(value: object) -> None:
    assert yaml.safe_load(f"key: {scalar(value)}") == {"key": value}


def test_yaml_12_numbers_are_quoted_for_other_readers() -> None:
    # PyYAML reads 1e3 as text, a YAML 1.2 reader as a number: quoted, both agree.
    assert scalar("1e3") == "'1e3'"
    assert scalar("0o17") == "'0o17'"


FOLDER_NAMES = [
    ("yes", "null"), ("No", "on"), (".5", "1e3"), ("#x", " leading"), ("trailing ", "a: b"),
    ("it's \"quoted\"", "modèle-日本語"), ("deep/" + "a" * 60 + "/" + "b" * 60 + "/" + "c" * 60 + "/yes", "True"),
]  # fmt: skip


@pytest.mark.parametrize("names", FOLDER_NAMES, ids=lambda names: repr(names))
def test_tricky_folder_names_survive_template_run_and_reopen(
    names: tuple[str, str], tmp_path, monkeypatch, llama_base, llama_finetune
) -> None:
    for name, source in zip(names, (llama_base, llama_finetune)):
        shutil.copytree(source, tmp_path / name)
    monkeypatch.chdir(tmp_path)

    assert main(["template", *names, "--method", "task_arithmetic", "-o", "t.yaml"]) == 0
    assert main(["run", "t.yaml", "out"]) == 0

    saved = Path("out/tui_merge_config.yaml").read_text(encoding="utf-8")
    assert saved == Path("t.yaml").read_text(encoding="utf-8")
    assert yaml.safe_load(saved)["base_model"] == names[0]
    assert [entry["model"] for entry in yaml.safe_load(saved)["models"]] == list(names)
    reopened = load_state("out/tui_merge_config.yaml")
    assert reopened.models == list(names) and reopened.base == names[0]
    assert [entry.model for entry in reopened.loaded_config().config.models] == list(names)


def test_a_wizard_tokenizer_source_with_a_tricky_path_reads_back(tmp_path, monkeypatch, llama_base) -> None:
    shutil.copytree(llama_base, tmp_path / "null")
    monkeypatch.chdir(tmp_path)
    state = WizardState(models=["null"], infos={"null": load_model_info("null")}, tokenizer_source="model:#x")

    assert yaml.safe_load(state.config_text())["tokenizer_source"] == "model:#x"


def test_a_hash_in_a_folder_name_stacks_layers_with_slices(tmp_path, monkeypatch, llama_base) -> None:
    shutil.copytree(llama_base, tmp_path / "#x")
    monkeypatch.chdir(tmp_path)
    Path("stack.yaml").write_text(
        "merge_method: passthrough\nslices:\n"
        f"  - sources: [{{model: {scalar('#x')}, layer_range: [0, 2]}}]\n"
        f"  - sources: [{{model: {scalar('#x')}, layer_range: [1, 2]}}]\n",
        encoding="utf-8",
    )

    assert main(["run", "stack.yaml", "out"]) == 0
    assert yaml.safe_load(Path("out/config.json").read_text())["num_hidden_layers"] == 3
