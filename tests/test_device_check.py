"""The GPU check's CPU half runs and writes its table, so the one call on a GPU machine cannot fail on a typo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def test_device_check_runs_its_cpu_half_on_the_tiny_preset(tmp_path) -> None:
    out = tmp_path / "out"
    command = ["bash", str(ROOT / "benchmarks" / "device_check.sh"), str(out), "--cpu-only", "--presets", "tiny",
               "--methods", "linear,dare_ties2", "--work", str(tmp_path / "work")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((out / "device_check.json").read_text())
    assert report["machine"]["cuda"] is False
    assert [row["method"] for row in report["rows"]] == ["linear", "dare_ties2"]
    for row in report["rows"]:
        assert row["cpu_seconds"] > 0 and row["floor_s"] > 0 and row["cpu_ratio"] > 0 and row["cpu_peak_rss_mib"] > 0
    table = (out / "device_check.md").read_text()
    assert "| tiny | dare_ties2 |" in table and "cpu x floor" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_device_check_refuses_to_pretend_without_cuda(tmp_path) -> None:
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})  # fmt: skip
    assert done.returncode == 2 and "torch sees no CUDA device" in done.stderr
