"""``tui-merge search --ray``: trials as tasks on a Ray cluster started here (``ray start --head`` on 127.0.0.1)
give the best trial the local search gives with the same seed, and a worker killed during a trial is retried."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

# Scores (t - 0.3)**2 and logs each t; the first time it is called it kills the Ray worker running its trial
# (the nearest ancestor that is a Ray worker process), as a lost node would.
KILLER = textwrap.dedent("""\
    import os, pathlib, signal, sys, time, yaml
    t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
    here = pathlib.Path(sys.argv[2])
    with open(here / "calls.log", "a") as log:
        log.write(repr(t) + "\\n")
    marker = here / "killed"
    if not marker.exists():
        marker.write_text("")
        pid = os.getppid()
        while pid > 1:
            command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ray::" in command or b"default_worker" in command:
                os.kill(pid, signal.SIGKILL)
                time.sleep(60)
            pid = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        raise SystemExit("no Ray worker above this command")
    print((t - 0.3) ** 2)
""")


@pytest.fixture()
def ray_cluster(tmp_path):
    """A one-node Ray cluster of two CPUs on 127.0.0.1, stopped after the test."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray = str(Path(sys.executable).parent / "ray")
    start = [ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
             "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=180)


def test_ray_gives_the_local_best_and_retries_a_killed_worker(capsys, tmp_path, ray_cluster, llama_base,
                                                               llama_finetune) -> None:  # fmt: skip
    from tui_merge.cli import main

    recipe = tmp_path / "slerp.yaml"
    recipe.write_text(f"merge_method: slerp\nbase_model: {llama_base}\nmodels:\n  - model: {llama_base}\n"
                      f"  - model: {llama_finetune}\nparameters:\n  t: 0.5\ndtype: float32\n")  # fmt: skip
    (tmp_path / "killer.py").write_text(KILLER)
    (tmp_path / "score.py").write_text(KILLER.replace("if not marker.exists():", "if False:"))
    common = ["search", str(recipe), "--space", "t=0..1", "--trials", "4", "--workers", "1", "--seed", "3"]

    assert main([*common, "--objective", f"command:{sys.executable} {tmp_path / 'score.py'} $RECIPE {tmp_path}",
                 "--study", str(tmp_path / "local.db")]) == 0  # fmt: skip
    local_best = re.search(r"the best trial is trial (\d+)", capsys.readouterr().out)[1]
    local_values = (tmp_path / "calls.log").read_text().splitlines()
    (tmp_path / "calls.log").unlink()

    search = [sys.executable, "-m", "tui_merge", *common, "--ray", ray_cluster, "--study", str(tmp_path / "ray.db"),
              "--objective", f"command:{sys.executable} {tmp_path / 'killer.py'} $RECIPE {tmp_path}"]  # fmt: skip
    done = subprocess.run(search, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "killed").exists()  # a worker was killed during the first trial
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[0] == calls[1] == local_values[0]  # its trial ran again, on a new worker
    assert calls[1:] == local_values  # the same seed asked the same values
    assert re.search(r"the best trial is trial (\d+)", done.stdout)[1] == local_best
