"""``tui-merge doctor``: the stack against the declared ranges, CUDA as torch sees it, the cache, the token
(never its value), the terminal; exit 1 with one line per problem."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from collections import namedtuple

import pytest
import torch

from tui_merge.cli import main

DiskUsage = namedtuple("DiskUsage", "total used free")
PLENTY = DiskUsage(total=2000 * 2**30, used=1000 * 2**30, free=1000 * 2**30)


@pytest.fixture(autouse=True)
def plenty_of_disk(monkeypatch) -> None:
    """The doctor says when the Hugging Face cache's disk runs low; the machine running the tests may be that
    machine, so every test here sees a disk with room unless it says otherwise."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: PLENTY)


def test_a_cuda_less_machine_in_range_is_all_right(capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    assert main(["doctor"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table wraps at the terminal's width
    assert "built for CUDA 12.4 but sees no device" in out and "All within range." in out
    for name in ("python", "torch", "transformers", "huggingface_hub", "safetensors", "textual", "Hub token"):
        assert name in out


def test_a_package_outside_its_range_is_one_problem_line_and_exit_1(capsys, monkeypatch) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "4.40.0" if name == "transformers" else real(name))  # fmt: skip
    assert main(["doctor"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "problem: transformers 4.40.0 is outside the supported range >=" in out
    assert out.count("problem:") == 1


def test_devices_are_listed_and_the_token_is_never_shown(capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Test GPU {index}")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index: (40 * 2**30, 80 * 2**30))
    monkeypatch.setenv("HF_TOKEN", "hf_not_for_your_eyes")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["doctor", "--json"]) == 0
    printed = capsys.readouterr().out
    assert "hf_not_for_your_eyes" not in printed
    facts = {fact["name"]: fact["value"] for fact in json.loads(printed)["facts"]}
    assert facts["cuda:0"] == "Test GPU 0, 40 of 80 GiB free" and facts["cuda:1"].startswith("Test GPU 1")
    assert facts["Hub token"] == "present (not shown)"
    assert facts["HF_HUB_OFFLINE"].startswith("set (1)")


def test_a_cache_disk_short_of_a_7b_model_is_one_problem_line_naming_the_cache(capsys, monkeypatch) -> None:
    short = DiskUsage(total=100 * 2**30, used=88 * 2**30, free=12 * 2**30)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: short)
    from huggingface_hub import constants

    assert main(["doctor"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert out.count("problem:") == 1
    assert f"problem: The Hugging Face cache {constants.HF_HUB_CACHE} has 12.0 GiB free; a 7B model" in out
