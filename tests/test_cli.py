"""The command line as a user drives it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import folder_digest

from tui_merge.cli import main

HEAVY_MODULES = ("torch", "transformers", "textual")


def loaded_modules_after(code: str) -> set[str]:
    """Run ``code`` in a fresh interpreter and return which heavy modules it imported."""
    probe = f"""
import sys
try:
    {code}
except SystemExit:
    pass
print("heavy=" + ",".join(name for name in {HEAVY_MODULES!r} if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    tagged = next(line for line in result.stdout.splitlines() if line.startswith("heavy="))
    return set(filter(None, tagged.removeprefix("heavy=").split(",")))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["inspect", "--help"],
        ["demo", "--help"],
        ["inspect"],
        ["run", "--help"],
        ["template", "--help"],
        ["export", "--help"],
        ["methods", "--help"],
    ],
)
def test_help_and_usage_errors_import_no_heavy_module(argv: list[str]) -> None:
    assert loaded_modules_after(f"from tui_merge.cli import main; main({argv!r})") == set()


def test_the_headless_modules_never_import_textual() -> None:
    imported = loaded_modules_after(
        "import tui_merge.compatibility.check, tui_merge.cli.inspect_cmd, tui_merge.samples"
    )

    assert "textual" not in imported


def test_help_shows_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["inspect", "--help"])

    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert "examples:" in help_text
    assert "tui-merge inspect ./mistral-base" in help_text
    assert "exit status: 0 mergeable, 1 an error-level finding, 2 bad input" in help_text


def test_inspect_prints_the_table_and_findings(
    capsys, llama_base: Path, llama_finetune: Path, llama_vocab_plus: Path
) -> None:
    inputs = {folder: folder_digest(folder) for folder in (llama_base, llama_finetune, llama_vocab_plus)}

    status = main(["inspect", str(llama_base), str(llama_finetune), str(llama_vocab_plus)])

    out = capsys.readouterr().out
    assert status == 0
    assert "llama-base (base)" in out and "llama-finetune" in out and "llama-vocab260" in out
    table = {line.split("  ")[0]: line.split() for line in out.splitlines() if line and not line.startswith(" ")}
    assert table["vocabulary"][1:] == ["256", "256", "260"]
    assert table["layers"][1:] == ["2", "2", "2"]
    assert "WARNING Vocabulary sizes differ" in out
    assert "  truncate: cut to the base's 256 rows, dropping 4 rows of" in out
    assert "INFO    llama-finetune shares a base with llama-base" in out
    assert out.rstrip().endswith("Mergeable.")
    assert {folder: folder_digest(folder) for folder in inputs} == inputs


def test_inspect_json_and_exit_one_when_not_mergeable(capsys, llama_base: Path, llama_unrelated: Path) -> None:
    status = main(["inspect", str(llama_base), str(llama_unrelated), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["mergeable"] is False
    assert report["base"] == "llama-base"
    assert [model["label"] for model in report["models"]] == ["llama-base", "llama-unrelated"]
    assert report["models"][0]["hidden_size"] == 32 and report["models"][0]["kv_heads"] == 2
    assert report["findings"][0]["code"] == "lineage" and report["findings"][0]["severity"] == "error"


def test_base_option_reorders_the_comparison(capsys, llama_base: Path, llama_finetune: Path) -> None:
    main(["inspect", str(llama_base), str(llama_finetune), "--base", str(llama_finetune), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert report["base"] == "llama-finetune"
    assert "llama-base shares a base with llama-finetune" in report["findings"][0]["message"]


def test_a_base_outside_the_list_joins_the_table(
    capsys, llama_base: Path, llama_finetune: Path, llama_vocab_plus: Path
) -> None:
    main(["inspect", str(llama_finetune), str(llama_vocab_plus), "--base", str(llama_base), "--json"])

    report = json.loads(capsys.readouterr().out)
    assert [model["label"] for model in report["models"]] == ["llama-base", "llama-finetune", "llama-vocab260"]


def test_single_model_shows_its_table(capsys, llama_base: Path) -> None:
    assert main(["inspect", str(llama_base)]) == 0

    out = capsys.readouterr().out
    assert "llama-base" in out and "(base)" not in out and "Mergeable" not in out


def test_python_dash_m_runs_the_cli(llama_base: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tui_merge", "inspect", str(llama_base), "--json"], capture_output=True, text=True
    )

    assert result.returncode == 0
    assert json.loads(result.stdout)["models"][0]["layers"] == 2


def test_demo_builds_models_once_and_inspects_them(capsys, tmp_path: Path) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    first = capsys.readouterr().out
    built = folder_digest(tmp_path / "demo")

    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    second = capsys.readouterr().out

    assert "demo-base (base)" in first and "demo-chat shares a base with demo-base" in first
    assert first == second
    assert folder_digest(tmp_path / "demo") == built
    assert {"tokenizer.json", "config.json", "model.safetensors"} <= set(built_names(tmp_path / "demo" / "demo-base"))
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".demo-")]


def built_names(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir()]


def test_inspect_cuts_long_folders_from_the_left_and_writes_home_as_tilde_either_way(
    capsys, tmp_path: Path, monkeypatch, llama_base: Path, llama_finetune: Path
) -> None:
    import shutil

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "80")
    shared = tmp_path / ("a-long-shared-folder-of-checkpoints-" * 2) / "runs"
    shutil.copytree(llama_base, shared / "model-base")
    shutil.copytree(llama_finetune, shared / "model-chat")
    typed_with_tilde = "~/" + str((shared / "model-base").relative_to(tmp_path))

    assert main(["inspect", typed_with_tilde, str(shared / "model-chat")]) == 0

    folder_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("folder"))
    assert "runs/model-base" in folder_row and "runs/model-chat" in folder_row  # the tails that differ stay
    assert folder_row.count("…") == 2 and len(folder_row.rstrip()) <= 80
    monkeypatch.setenv("COLUMNS", "400")  # wide enough for whole paths: the two forms of home read alike
    assert main(["inspect", typed_with_tilde, str(shared / "model-chat")]) == 0
    folder_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("folder"))
    assert folder_row.split()[1:] == [f"~/{shared.relative_to(tmp_path)}/model-base",
                                      f"~/{shared.relative_to(tmp_path)}/model-chat"]  # fmt: skip
