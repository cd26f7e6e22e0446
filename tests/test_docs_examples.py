"""The command lines in README and docs/ stay true: each parses as tui-merge reads it, and those that run on
the sample models run, exit 0, in a folder holding them (``./base``, ``./chat``, ``./code``).

Usage synopses (``[--flag]``) and printed output are left out. A line that needs what a test folder does not
hold (a Hub repository, a circuit config, a model under another name, an interrupted merge to ``--resume``, a
``--download``) is only parsed; those run in their own tests (``test_hub_*``, ``test_resume``).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from tui_merge.cli import main
from tui_merge.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLE_ARGUMENTS = {"./base", "./chat", "./code", "./merged", "merged", "merge", "merge.yaml", "config.yaml", "./lora"}
"""What a line may name to be run here: the sample models, and the files the page's earlier lines write."""


def command_lines(page: Path) -> list[list[str]]:
    """The ``tui-merge`` command lines of the page's shell blocks, as words (comments, pipes and redirections
    cut; continuation lines joined)."""
    lines = []
    for block in re.findall(r"```(?:sh|console|bash)\n(.*?)```", page.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ").removeprefix(".venv/bin/").removeprefix("nohup ")
            if not line.startswith("tui-merge ") or "[--" in line:
                continue
            line = re.split(r"\s+(?:>|2>|&&|\||&)(?:\s|$)", line)[0]
            lines.append(shlex.split(line, comments=True)[1:])
    return lines


def runs_here(words: list[str]) -> bool:
    command, *rest = words
    named = [word for word in rest if not word.startswith("-") and not re.fullmatch(r"[\d.]+[A-Za-z]*", word)]
    situational = {"--resume", "--download"} & set(rest)
    runnable = (
        command in ("inspect", "template", "run", "verify", "methods", "export", "extract-lora") and not situational
    )
    return runnable and set(named) <= SAMPLE_ARGUMENTS


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_command_line_of_the_page_parses(page: Path) -> None:
    for words in command_lines(page):
        try:
            build_parser().parse_args(words)
        except SystemExit as stop:
            raise AssertionError(f"{page.name}: `tui-merge {' '.join(words)}` no longer parses") from stop


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_the_page_s_lines_that_run_on_the_sample_models_exit_0(
    page: Path, tmp_path, monkeypatch, llama_base, llama_finetune, llama_second_finetune
) -> None:
    runnable = [words for words in command_lines(page) if runs_here(words)]
    if not runnable:
        pytest.skip(f"{page.name} has no command line that runs on the sample models")
    for name, source in (("base", llama_base), ("chat", llama_finetune), ("code", llama_second_finetune)):
        shutil.copytree(source, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for words in runnable:
        if words[0] == "run" and not Path(words[1]).exists():  # a page that runs a config it writes elsewhere
            assert main(["template", "./base", "./chat", "--method", "slerp", "-o", words[1]]) == 0
        assert main(words) == 0, f"{page.name}: `tui-merge {' '.join(words)}` failed"
