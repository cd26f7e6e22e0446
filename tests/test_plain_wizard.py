"""The plain wizard driven as its users drive it: answers typed line by line, and questionary's prompts."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import folder_digest
from safetensors.torch import load_file

from tui_merge.cli import main
from tui_merge.plain import prompts
from tui_merge.plain.prompts import LinePrompter, QuestionaryPrompter


def answer(monkeypatch, *lines: str) -> None:
    """Type these answers, one per line, on stdin (not a terminal: the wizard asks in numbered lines)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{line}\n" for line in lines)))


def method_number(capsys_text: str, name: str) -> str:
    return next(line.split(")")[0].strip() for line in capsys_text.splitlines() if f") {name}:" in line)


def test_a_linear_merge_typed_line_by_line_saves_its_config_and_equals_its_replay(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "", "1", "", "[1, 0]", "[0, 1]", "y", "out", "4", "", "", "", "merge.yaml", "y")

    assert main(["plain", str(llama_base), str(llama_finetune)]) == 0

    out = capsys.readouterr().out
    assert "out passed verification." in out  # checked after the merge, as the wizard does
    assert "Separate values for attention and MLP" in out and "classic slerp recipe" not in out  # not slerp
    config = yaml.safe_load((tmp_path / "merge.yaml").read_text())
    assert config["merge_method"] == "linear" and config["dtype"] == "float32"
    first, second = ({row.get("filter", "layers"): row["value"] for row in entry["parameters"]["weight"]}
                     for entry in config["models"])  # fmt: skip
    assert first["layers"] == [1.0, 0.0] and second["layers"] == [0.0, 1.0]  # two layers: the anchors themselves
    assert first["model.embed_tokens"] == 1.0 and first["lm_head"] == 0.0  # embeddings first, the rest last
    assert (tmp_path / "out" / "tui_merge_config.yaml").read_text() == (tmp_path / "merge.yaml").read_text()
    assert main(["run", "merge.yaml", "replay"]) == 0
    assert folder_digest(tmp_path / "replay") == folder_digest(tmp_path / "out")
    merged = load_file(tmp_path / "out" / "model.safetensors")
    layer0 = "model.layers.0.self_attn.q_proj.weight"
    np.testing.assert_array_equal(merged[layer0].numpy(), load_file(llama_base / "model.safetensors")[layer0].numpy())


@pytest.fixture(scope="module")
def second_finetune(llama_second_finetune) -> Path:
    return llama_second_finetune


def test_ties_asks_for_the_base_and_every_models_parameters(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune, second_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "")  # input ends at the method question: read its number there, as a user would
    assert main(["plain", str(llama_base), str(llama_finetune), str(second_finetune)]) == 2
    ties = method_number(capsys.readouterr().out, "ties")
    answer(monkeypatch, "", ties, "1", "n", "0.5", "0.25", "abc", "0.3", "1.5", "0.9", "", "n", "out", "1", "2GB",
           "", "", "t.yaml", "n")  # fmt: skip

    assert main(["plain", str(llama_base), str(llama_finetune), str(second_finetune)]) == 0

    out = capsys.readouterr().out
    assert "density must be a number between 0 and 1, got 'abc'." in out
    assert "density must be between 0 and 1, got 1.5." in out
    config = yaml.safe_load((tmp_path / "t.yaml").read_text())
    assert config["merge_method"] == "ties" and config["base_model"] == str(llama_base)
    models = {entry["model"]: entry["parameters"] for entry in config["models"] if entry["model"] != str(llama_base)}
    assert models[str(llama_finetune)]["density"] == 0.3 and models[str(second_finetune)]["density"] == 0.9
    weights = {name: params["weight"][-1]["value"] for name, params in models.items()}
    assert weights == {str(llama_finetune): [0.5, 0.5], str(second_finetune): [0.25, 0.25]}
    assert config["parameters"] == {"lambda": 1.0, "normalize": False}
    assert config["tui_merge"]["shard_size"] == "2GB"
    assert not (tmp_path / "out").exists()  # declined at the review: the config is saved, nothing merged


def test_different_vocabularies_offer_the_fixes_and_the_choice_lands_in_the_config(
    monkeypatch, capsys, tmp_path, llama_base, llama_vocab_plus
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "")
    assert main(["plain", str(llama_base), str(llama_vocab_plus)]) == 2
    out = capsys.readouterr().out
    assert "How should the vocabularies be reconciled?" in out
    pad = next(line.split(")")[0].strip() for line in out.splitlines() if ") pad:" in line)
    answer(monkeypatch, "", pad, "1", "", "0.5", "0.5", "y", "out", "4", "", "", "", "v.yaml", "y")

    assert main(["plain", str(llama_base), str(llama_vocab_plus)]) == 0

    assert yaml.safe_load((tmp_path / "v.yaml").read_text())["tui_merge"]["vocab"] == "pad"
    assert load_file(tmp_path / "out" / "model.safetensors")["model.embed_tokens.weight"].shape[0] == 260


def test_models_that_cannot_be_merged_stop_at_the_findings_with_exit_2(
    monkeypatch, capsys, tmp_path, llama_base, llama_deeper
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "")

    assert main(["plain", str(llama_base), str(llama_deeper)]) == 2
    assert "These models cannot be merged:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_model_is_asked_again_and_input_that_ends_early_exits_2(
    monkeypatch, capsys, tmp_path, llama_base
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, str(tmp_path / "nowhere"), str(llama_base))

    assert main(["plain"]) == 2

    captured = capsys.readouterr()
    assert f"Model folder {tmp_path / 'nowhere'} does not exist." in captured.out
    assert "Input ended before the plain wizard finished; nothing was written." in captured.err
    assert list(tmp_path.iterdir()) == []


def test_line_prompts_colour_only_when_asked_and_number_their_choices(monkeypatch, capsys) -> None:
    answer(monkeypatch, "7", "2", "maybe", "n")
    prompter = LinePrompter(colour=True)
    prompter.say("bad", "error")
    assert prompter.select("Pick", [("a", "A"), ("b", "B")], "A") == "B"
    assert prompter.confirm("Sure?") is False
    out = capsys.readouterr().out
    assert "\x1b[31mbad\x1b[0m" in out and "  2) b" in out
    assert "Type a number from 1 to 2." in out and "Answer y or n." in out

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not prompts.use_colour()
    monkeypatch.setenv("TERM", "dumb")
    assert prompts.dumb_terminal()


def test_questionary_prompts_answer_from_keys() -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    with create_pipe_input() as keys:
        prompter = QuestionaryPrompter(colour=False, input=keys, output=DummyOutput())
        keys.send_text("\x1b[B\r")  # down, enter
        assert prompter.select("Method", [("linear", "linear"), ("slerp", "slerp")], "linear") == "slerp"
        keys.send_text("\x15oops\r\x15[0, 1]\r")  # an invalid answer is refused, the next one taken
        assert prompter.text("t", "0.5", lambda text: None if text.startswith("[") else "a list") == "[0, 1]"
        keys.send_text("n")
        assert prompter.confirm("Merge now?") is False


def test_tui_merge_on_a_dumb_terminal_opens_the_plain_wizard_with_a_note(monkeypatch, capsys) -> None:
    import tui_merge.cli.plain_cmd as plain_cmd

    opened = []
    monkeypatch.setattr(plain_cmd, "run", lambda args: opened.append(args) or 0)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("TERM", "dumb")

    assert main([]) == 0

    assert len(opened) == 1
    assert "cannot draw the full-screen wizard; asking one question at a time instead" in capsys.readouterr().err


def test_plain_help_shows_examples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["plain", "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "TERM=dumb tui-merge plain" in text


def test_the_plain_wizard_leaves_textual_unimported(tmp_path: Path) -> None:
    import subprocess

    code = "import sys, tui_merge.cli.plain_cmd, tui_merge.plain.flow; print('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_print_yaml_asks_on_stderr_prints_only_the_config_and_writes_nothing(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "", "1", "", "0.25", "0.75", "y", "3", "1GB", "2", "3")

    assert main(["plain", str(llama_base), str(llama_finetune), "--print-yaml"]) == 0

    captured = capsys.readouterr()
    config = yaml.safe_load(captured.out)
    assert config["merge_method"] == "linear" and config["tui_merge"]["shard_size"] == "1GB"
    assert config["tui_merge"]["device"] == "cpu" and config["tokenizer_source"] == "union"
    assert [entry["parameters"]["weight"][-1]["value"] for entry in config["models"]] == [[0.25, 0.25], [0.75, 0.75]]
    assert "Merge method" in captured.err and "Output folder" not in captured.err
    assert "Largest shard file [5GB]: 1GB\nDevice\n" in captured.err  # each piped answer ends its line
    assert list(tmp_path.iterdir()) == []


def test_a_reopened_config_keeps_its_values_when_every_answer_is_the_default(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "", "1", "", "[1, 0]", "0.5", "n", "out", "3", "2GB", "", "", "first.yaml", "n")
    assert main(["plain", str(llama_base), str(llama_finetune)]) == 0
    capsys.readouterr()
    answer(monkeypatch, "", "", "", "", "", "", "", "", "", "")

    assert main(["plain", "--config", "first.yaml", "--print-yaml"]) == 0

    assert yaml.safe_load(capsys.readouterr().out) == yaml.safe_load((tmp_path / "first.yaml").read_text())


def test_slerp_with_attention_and_mlp_split_writes_the_classic_recipe(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    answer(monkeypatch, "")
    assert main(["plain", str(llama_base), str(llama_finetune)]) == 2  # read the method's number first
    slerp = method_number(capsys.readouterr().out, "slerp")
    answer(monkeypatch, "", slerp, "1", "y", "[0, 1]", "[1, 0]", "0.5", "3", "", "", "")

    assert main(["plain", str(llama_base), str(llama_finetune), "--print-yaml"]) == 0

    config = yaml.safe_load(capsys.readouterr().out)
    rows = {row.get("filter", "rest"): row["value"] for row in config["parameters"]["t"]}
    assert rows["self_attn"] == [0.0, 1.0] and rows["mlp"] == [1.0, 0.0] and rows["rest"] == [0.5, 0.5]
    assert rows["model.embed_tokens"] == 0.5 and rows["lm_head"] == 0.5


def test_an_existing_config_name_offers_a_free_one_so_enter_goes_on(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "merge.yaml").write_text("# an earlier recipe\n")
    answer(monkeypatch, "", "1", "", "", "", "y", "out", "", "", "", "", "", "n")

    assert main(["plain", str(llama_base), str(llama_finetune)]) == 0

    assert "Save the config as [merge-2.yaml]" in capsys.readouterr().out
    assert (tmp_path / "merge.yaml").read_text() == "# an earlier recipe\n" and (tmp_path / "merge-2.yaml").is_file()


def test_ctrl_c_during_the_questions_says_the_answers_are_lost(monkeypatch, capsys, llama_base, llama_finetune):
    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr("builtins.input", interrupted)

    assert main(["plain", str(llama_base), str(llama_finetune)]) == 130

    assert "plain wizard stopped; answers not yet reviewed are lost." in capsys.readouterr().err


def method_numbers() -> dict[str, str]:
    from tui_merge.wizard.state import WizardState

    return {name: str(number) for number, (_, name) in enumerate(WizardState().method_choices(), 1)}


def test_back_returns_to_the_previous_step_that_asked_something(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    """``back`` at the base question leaves the method step for the models (the findings asked nothing)."""
    monkeypatch.chdir(tmp_path)
    numbers = method_numbers()
    answer(monkeypatch, "back", "", numbers["ties"], "back", "", "1", "", "0.25", "0.75", "y", "4", "", "", "")

    assert main(["plain", str(llama_base), str(llama_finetune), "--print-yaml"]) == 0

    captured = capsys.readouterr()
    config = yaml.safe_load(captured.out)
    assert config["merge_method"] == "linear" and config["dtype"] == "float32"
    assert "This is the first step." in captured.err
    assert captured.err.count("Merge method") == 2 and captured.err.count("Add another model") == 3
    assert "Base model" in captured.err


def test_every_method_is_offered_as_in_the_full_wizard_and_one_that_cannot_merge_these_models_says_why(
    monkeypatch, capsys, tmp_path, llama_base, llama_finetune
) -> None:
    monkeypatch.chdir(tmp_path)
    numbers = method_numbers()
    answer(monkeypatch, "", numbers["model_stock"], numbers["linear"], "", "0.5", "0.5", "y", "1", "", "", "")

    assert main(["plain", str(llama_base), str(llama_finetune), "--print-yaml"]) == 0

    captured = capsys.readouterr()
    assert f"{len(numbers)}) " in captured.err and ") passthrough:" in captured.err
    assert "model_stock takes" in captured.err and "you have 2 models. Choose another" in captured.err
    config = yaml.safe_load(captured.out)
    assert config["merge_method"] == "linear" and "dtype" not in config  # the default: the base model's own dtype
    assert "same as the base model (float32)" in captured.err


def test_on_a_terminal_lines_wrap_at_words_and_a_long_list_keeps_one_line_per_choice(monkeypatch, capsys) -> None:
    prompter = LinePrompter(colour=False, width=40)
    sentence = "Hidden sizes differ (base: 4096, chat: 5120); tensors of different shapes cannot be merged."
    prompter.say(f"  ERROR: {sentence}")
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 40 for line in lines) and len(lines) == 3
    assert " ".join(line.strip() for line in lines) == f"ERROR: {sentence}"
    assert all(line.startswith("    ") for line in lines[1:])  # continued under the text, not the margin

    answer(monkeypatch, "12")
    choices = [(f"method{number}: " + "a long description of what it does " * 2, number) for number in range(19)]
    assert prompter.select("Merge method", choices, 0) == 11
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + 19 + 1 and all(len(line) <= 40 for line in lines)
    assert lines[12].startswith("  12) method11: a long") and lines[12].endswith("…")
