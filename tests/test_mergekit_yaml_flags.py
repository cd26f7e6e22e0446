"""mergekit-yaml's command lines, from its own usage and from model cards, run as ``tui-merge run``."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tui_merge.cli import main

CONFIG = """\
merge_method: slerp
base_model: ./base
models:
  - model: ./base
  - model: ./chat
parameters:
  t: 0.5
dtype: bfloat16
"""


@pytest.fixture
def card_folder(tmp_path, monkeypatch, llama_base, llama_finetune) -> Path:
    shutil.copytree(llama_base, tmp_path / "base")
    shutil.copytree(llama_finetune, tmp_path / "chat")
    for name in ("config.yml", "config.yaml"):
        (tmp_path / name).write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def as_run(line: str) -> list[str]:
    """A mergekit-yaml command line with ``mergekit-yaml`` replaced by ``tui-merge run``."""
    words = shlex.split(line)
    assert words[0] == "mergekit-yaml"
    return ["run", *words[1:]]


def test_the_model_card_line_runs_verbatim_and_its_options_travel_in_the_recipe(card_folder, capsys) -> None:
    line = "mergekit-yaml config.yaml merge --copy-tokenizer --allow-crimes --out-shard-size 1B --lazy-unpickle"

    assert main(as_run(line)) == 0

    err = capsys.readouterr().err
    assert "--lazy-unpickle changes nothing here" in err and "unrecognized" not in err
    recipe = (card_folder / "merge" / "tui_merge_config.yaml").read_text()
    assert recipe.startswith(CONFIG)
    assert "shard_size: 2000000000" in recipe and "copy_tokenizer: true" in recipe  # 1B parameters of bf16
    assert (card_folder / "merge" / "tokenizer.json").is_file()
    assert main(["run", "merge/tui_merge_config.yaml", "again"]) == 0
    assert (card_folder / "again" / "model.safetensors").read_bytes() == (
        card_folder / "merge" / "model.safetensors"
    ).read_bytes()


def test_the_seed_usage_line_is_accepted_and_asks_for_the_gpu(card_folder, capsys) -> None:
    import torch

    status = main(as_run("mergekit-yaml config.yml ./out --cuda"))

    err = capsys.readouterr().err
    assert "unrecognized" not in err
    if torch.cuda.is_available():
        assert status == 0
    else:  # the flag did ask for the GPU: here it says there is none, as mergekit would fail
        assert status == 2 and "tui_merge.device cuda was asked for but torch sees no CUDA GPU" in err


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--trust-remote-code"], "--trust-remote-code is refused: tui-merge never runs code from a model"),
        (["--no-safe-serialization"], "--no-safe-serialization is refused: tui-merge writes safetensors only"),
        (["--out-shard-size", "lots"], "--out-shard-size lots is not a parameter count"),
    ],
)
def test_options_that_cannot_hold_here_are_refused_in_one_sentence(card_folder, capsys, flags, said) -> None:
    assert main(["run", "config.yaml", "out", *flags]) == 2

    assert said in capsys.readouterr().err and not (card_folder / "out").exists()


def test_the_remaining_options_do_what_they_say(card_folder, capsys) -> None:
    assert main(["run", "config.yaml", "quiet", "--quiet", "--no-cuda", "--random-seed", "7", "-j", "4"]) == 0
    quiet = capsys.readouterr()
    assert [line.split(":")[1] for line in quiet.err.splitlines()] == [" --num-threads changes nothing here"]
    assert "Merged 21 tensors" in quiet.out
    recipe = (card_folder / "quiet" / "tui_merge_config.yaml").read_text()
    assert "device: cpu" in recipe and "seed: 7" in recipe

    assert main(["run", "config.yaml", "loud", "-v", "--no-copy-tokenizer", "--unsafe-truncate-embeddings"]) == 0
    loud = capsys.readouterr()
    assert "100% 21/21 tensors" in loud.err  # the log lines, even where a bar could be drawn
    assert not (card_folder / "loud" / "tokenizer.json").exists()
    assert "vocab: truncate" in (card_folder / "loud" / "tui_merge_config.yaml").read_text()
