"""How long the everyday commands take on small models: wall time, warm cache, medians of several runs.

Run from the repository root (not part of the test suite):

    .venv/bin/python benchmarks/latency.py
    .venv/bin/python benchmarks/latency.py --repeat 7 --json latency.json

It builds the demo models (tiny llama base and fine-tune, with tokenizers)
in a temporary folder, runs each command once to warm the page cache, then
``--repeat`` times as a separate process, and prints the median wall time
next to its target. Targets come from the issue that set them; a command
over its target is marked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {
    "--help": 0.3,
    "methods": 0.3,
    "inspect A B": 1.0,
    "run: output exists": 0.6,
    "run: missing model": 0.6,
    "run: unknown key": 0.6,
    "run: a whole merge": 2.0,
    "run: first of its shape": None,
}
"""Seconds; None: measured, no target (the first merge of a model shape also asks transformers whether the
config fits, which the user cache then remembers)."""


def commands(folder: Path) -> dict[str, list[str]]:
    base, chat = str(folder / "demo-base"), str(folder / "demo-chat")
    config = folder / "merge.yaml"
    config.write_text(f"merge_method: linear\nmodels: [{{model: {base}}}, {{model: {chat}}}]\n")
    missing = folder / "missing.yaml"
    missing.write_text(f"merge_method: linear\nmodels: [{{model: {base}}}, {{model: {folder / 'nowhere'}}}]\n")
    unknown = folder / "unknown.yaml"
    unknown.write_text(f"merge_method: linear\nmodels: [{{model: {base}}}, {{model: {chat}}}]\ndtyp: bf16\n")
    taken = folder / "taken"
    taken.mkdir(exist_ok=True)
    (taken / "notes.txt").write_text("mine")
    return {
        "--help": ["--help"],
        "methods": ["methods"],
        "inspect A B": ["inspect", base, chat],
        "run: output exists": ["run", str(config), str(taken)],
        "run: missing model": ["run", str(missing), str(folder / "out")],
        "run: unknown key": ["run", str(unknown), str(folder / "out")],
        "run: a whole merge": ["run", str(config), str(folder / "merged")],
        "run: first of its shape": ["run", str(config), str(folder / "merged")],
    }


def timed(argv: list[str], cleanup: Path, fresh_cache: bool = False) -> float:
    shutil.rmtree(cleanup, ignore_errors=True)
    environment = dict(os.environ)
    if fresh_cache:
        environment["TUI_MERGE_CACHE"] = tempfile.mkdtemp(prefix="tui-merge-cache-")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "tui_merge", *argv], capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if done.returncode != 0:  # a failed run is an error, never a figure
        raise SystemExit(f"tui-merge {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    if fresh_cache:
        shutil.rmtree(environment["TUI_MERGE_CACHE"], ignore_errors=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the medians as JSON")
    args = parser.parse_args()
    from tui_merge.samples import build_demo_models

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        build_demo_models(folder)
        results = {}
        for name, argv in commands(folder).items():
            fresh = TARGETS[name] is None
            timed(argv, folder / "merged")  # warm the page cache
            results[name] = statistics.median(timed(argv, folder / "merged", fresh) for _ in range(args.repeat))
    print(f"{'command':<24} {'median s':>9} {'target s':>9}")
    for name, seconds in results.items():
        target = TARGETS[name]
        mark = "" if target is None or seconds <= target else "  over"
        shown = "-" if target is None else f"{target:.1f}"
        print(f"{name:<24} {seconds:>9.2f} {shown:>9}{mark}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
