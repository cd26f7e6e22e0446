"""Peak memory and time of ``tui-merge moe`` building 8 experts of the 1b preset, next to the machine's I/O floor.

Run from the repository root (not part of the test suite; it writes about 11 GB):

    .venv/bin/python benchmarks/moe_memory.py
    .venv/bin/python benchmarks/moe_memory.py --experts 4 --preset 0.5b

It reuses ``merge_speed.py``'s synthetic Llama-shaped bf16 base and fine-tunes (built once under ``--work``),
writes a mergekit-moe config whose experts cycle through them (``gate_mode: random``: the routers cost nothing
here; the ``hidden`` mode adds one forward pass of the base, which is transformers' memory, not the build's),
runs ``tui-merge moe`` as a child process and prints its wall time, peak RSS (``wait4``) and output size, and
the floor of the same bytes: reading the inputs once and writing an output of the same size with fsync.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from merge_speed import PRESETS, build_models, floor, measure, settle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/tui-merge-bench"))
    args = parser.parse_args()
    print(f"building the {args.preset} models in {args.work} (once)…", flush=True)
    subprocess.run([sys.executable, str(Path(__file__).with_name("merge_speed.py")), "--build-only", "--preset",
                    args.preset, "--work", str(args.work)], check=True)  # fmt: skip
    models = build_models(args.work, args.preset)
    cycle = [models["ft1"], models["ft2"], models["base"]]
    experts = [cycle[index % len(cycle)] for index in range(args.experts)]
    config = args.work / "moe.yaml"
    lines = [f"base_model: {models['base']}", "gate_mode: random", "experts_per_token: 2", "experts:"]
    lines += [f"  - source_model: {expert}" for expert in experts]
    config.write_text("\n".join(lines) + "\n")
    output = args.work / "moe-out"
    shutil.rmtree(output, ignore_errors=True)
    inputs = [models["base"], models["ft1"], models["ft2"]]
    settle(inputs)
    seconds, rss = measure([sys.executable, "-m", "tui_merge", "moe", str(config), str(output), "--no-verify"])
    written = sum(path.stat().st_size for path in output.glob("*.safetensors"))
    shutil.rmtree(output)
    settle(inputs)
    floor_seconds, _ = floor([models["base"] / "model.safetensors"] * 3, args.work)
    # The floor script writes one input's size; scale its write share to the MoE's output by the bytes.
    per_input = (models["base"] / "model.safetensors").stat().st_size
    print(f"tui-merge moe, {args.experts} experts of {args.preset}: {seconds:.1f} s, peak RSS {rss:.0f} MiB, "
          f"{written / 2**30:.2f} GiB written ({written / seconds / 2**20:.0f} MiB/s)")  # fmt: skip
    print(f"floor of reading three inputs and writing {per_input / 2**30:.2f} GiB: {floor_seconds:.1f} s "
          f"(writing {written / per_input:.1f}x that is what the build must do at least)")  # fmt: skip


if __name__ == "__main__":
    main()
