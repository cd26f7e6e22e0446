"""The release artefacts: an sdist and a wheel built from it, checked by twine, and the wheel installed into a
fresh environment that already holds torch and the other dependencies (as a GPU server's does), where the
command runs from outside the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import tui_merge

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def tracked_copy(target: Path) -> Path:
    """The repository's tracked files (what a release is built from), away from this checkout's build leftovers."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_the_wheel_installs_beside_an_existing_torch_and_runs(tmp_path) -> None:
    source = tracked_copy(tmp_path / "source")
    dist = tmp_path / "dist"
    # From the copy, sdist first and the wheel from the sdist: a file the sdist forgot fails here.
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
                           capture_output=True, text=True)  # fmt: skip
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert [wheel.name for wheel in wheels] == [f"tui_merge-{tui_merge.__version__}-py3-none-any.whl"]
    assert len(sdists) == 1
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, [*wheels, *sdists])],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # its pip: this one's
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # The dependencies as a server already has them: this environment's packages, visible on the new one's
    # path (a plain path entry: this checkout's own editable install is not).
    shared = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "dependencies.pth").write_text("\n".join(sorted(shared)) + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
                                str(wheels[0])],
                               capture_output=True, text=True)  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "torch" not in installed.stdout.split("Successfully installed", 1)[-1]

    away = tmp_path / "elsewhere"
    away.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["TUI_MERGE_CACHE"] = str(tmp_path / "cache")
    command = venv / "bin" / "tui-merge"

    def run(*args: str) -> str:
        done = subprocess.run([command, *args], cwd=away, env=environment, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, f"tui-merge {' '.join(args)}: {done.stderr}"
        return done.stdout

    where = subprocess.run([python, "-c", "import tui_merge; print(tui_merge.__file__)"], cwd=away, env=environment,
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert where.startswith(purelib), where
    assert tui_merge.__version__ in run("--version")
    assert "slerp" in run("methods") and "ties" in run("methods")
    shown = run("demo", "--dir", str(tmp_path / "demo"))
    assert "demo-base" in shown and "llama" in shown
