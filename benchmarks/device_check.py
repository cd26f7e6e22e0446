"""The CUDA path checked and timed in one call on a GPU machine; its CPU half runs anywhere (``--cpu-only``).

Run through ``benchmarks/device_check.sh OUT [options]`` from the repository root (the wrapper installs the
wheels a bare GPU machine lacks). For each preset (synthetic Llama-shaped bf16 checkpoints: a base and two
fine-tunes, built on the GPU when there is one) and each method (linear, slerp, TIES and DARE-TIES of two
fine-tunes) it measures, in the same run:

* the I/O floor: read exactly the inputs once, one float32 pass, write and fsync an output of the same size;
* the merge on CUDA and on the CPU, each ``tui-merge run`` in its own process: wall time, ratio to the floor,
  peak host RSS, and on CUDA the peak GPU memory and mean GPU utilisation sampled with NVML;
* whether the CUDA and CPU outputs agree: deterministic methods to one bfloat16 step on 99.9% of the values,
  selecting and random ones by the norm of their change from the base (``merge_speed.outputs_agree``);
* host-to-device and device-to-host bandwidth of pinned memory.

It writes ``device_check.json`` and ``device_check.md`` into OUT and prints the table. ``--budget-s`` (420 by
default) keeps the whole check inside one device call: a preset, or a method of it, is skipped (and said) when
the time its predecessors took says it would not fit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from merge_speed import METHODS, PRESETS, first_run, floor, measure, outputs_agree, settle  # noqa: E402

CHECKED = ("linear", "slerp", "ties2", "dare_ties2")
CHECKED_LARGE = ("linear", "ties1")
"""On a 7B preset: methods of the base and one fine-tune, so its models and both outputs fit a 64 GiB disk."""
STATISTICAL = ("ties1", "ties2", "dare_ties2")
"""Methods whose CUDA and CPU outputs differ by draws or by ties at the cut: compared by their change's norm."""


class GpuSampler:
    """Peak memory used and mean utilisation of GPU 0 while a child process runs (NVML, when it is there)."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML: the figures are left out, the check goes on
            self.nvml = None
        self.samples: list[tuple[int, int]] = []
        self.running = False

    def __enter__(self) -> GpuSampler:
        self.samples, self.running = [], True
        if self.nvml is not None:
            self.baseline = self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used
            busy = self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
            self.samples.append((memory, busy))
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        if self.nvml is not None:
            self.thread.join()

    def figures(self) -> tuple[float | None, float | None]:
        """Peak GPU memory in MiB above what was used before, and mean utilisation in percent."""
        if not self.samples:
            return None, None
        peak = max(memory for memory, _ in self.samples) - self.baseline
        return round(peak / 2**20), round(sum(busy for _, busy in self.samples) / len(self.samples))


def bandwidth() -> dict[str, float]:
    """Pinned host-to-device and device-to-host copy speed in GB/s (256 MiB, best of three)."""
    import torch

    host = torch.empty(256 << 20, dtype=torch.uint8, pin_memory=True)
    device = torch.empty_like(host, device="cuda")
    speeds = {}
    for name, copy in (("h2d_gb_s", lambda: device.copy_(host, non_blocking=True)),
                       ("d2h_gb_s", lambda: host.copy_(device, non_blocking=True))):  # fmt: skip
        best = float("inf")
        for _ in range(3):
            torch.cuda.synchronize()
            started = time.perf_counter()
            copy()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        speeds[name] = round(host.numel() / best / 1e9, 1)
    return speeds


def machine(cuda: bool) -> dict[str, object]:
    import torch

    facts: dict[str, object] = {"python": platform.python_version(), "torch": torch.__version__,
                                "cpus": os.cpu_count(), "cuda": cuda}  # fmt: skip
    if cuda:
        facts |= {"gpu": torch.cuda.get_device_name(0), "cuda_version": torch.version.cuda}
    return facts


def run_merge(text: str, device: str, work: Path, name: str, sampler: GpuSampler | None) -> dict[str, object]:
    config = work / f"{name}-{device}.yaml"
    config.write_text(text + f"tui_merge: {{device: {device}}}\n")
    output = work / f"out-{name}-{device}"
    subprocess.run(["rm", "-rf", str(output), f"{output}.partial"], check=True)
    command = [sys.executable, "-m", "tui_merge", "run", str(config), str(output)]
    if sampler is None:
        with first_run() as environment:
            seconds, rss = measure(command, environment)
        return {"seconds": round(seconds, 2), "peak_rss_mib": round(rss), "output": output}
    with sampler, first_run() as environment:
        seconds, rss = measure(command, environment)
    gpu_memory, utilisation = sampler.figures()
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(rss), "peak_gpu_mib": gpu_memory,
            "gpu_util_pct": utilisation, "output": output}  # fmt: skip


def check_preset(preset: str, args: argparse.Namespace, cuda: bool, started: float, say) -> list[dict]:
    work = args.work
    large = PRESETS[preset][0] >= 4096
    methods = CHECKED_LARGE if large else CHECKED
    if args.methods:
        methods = tuple(name for name in methods if name in args.methods.split(","))
    say(f"{preset}: building the models in {work} (once)…")
    subprocess.run([sys.executable, str(Path(__file__).parent / "merge_speed.py"), "--build-only", "--preset", preset,
                    "--work", str(work), "--fine-tunes", "1" if large else "2"]
                   + (["--build-device", "cuda"] if cuda else []), check=True)  # fmt: skip
    models = {name: work / f"{preset}-{name}" for name in ("base", "ft1", "ft2")}
    size = (models["base"] / "model.safetensors").stat().st_size
    sampler = GpuSampler() if cuda else None
    rows, last = [], None
    for name in methods:
        elapsed = time.monotonic() - started
        if last is not None and elapsed + last > args.budget_s:
            say(f"{preset} {name}: skipped, {elapsed:.0f} s of {args.budget_s} s spent and the last took {last:.0f} s")
            rows.append({"preset": preset, "method": name, "skipped": "out of time"})
            continue
        began = time.monotonic()
        text = METHODS[name].format(**{key: str(folder) for key, folder in models.items()})
        inputs = [models["base"], models["ft1"], *([models["ft2"]] if "ft2" in text else [])]
        settle(inputs)
        floor_seconds, _ = floor([folder / "model.safetensors" for folder in inputs], work)
        row: dict[str, object] = {"preset": preset, "method": name, "bytes_out": size,
                                  "floor_s": round(floor_seconds, 2)}  # fmt: skip
        outputs = {}
        for device in ["cuda", "cpu"] if cuda else ["cpu"]:
            settle(inputs)
            result = run_merge(text, device, work, name, sampler if device == "cuda" else None)
            outputs[device] = result.pop("output")
            row |= {f"{device}_{key}": value for key, value in result.items()}
            row[f"{device}_ratio"] = round(result["seconds"] / floor_seconds, 2)
        if cuda:
            row["agree"] = outputs_agree(outputs["cuda"], outputs["cpu"], models["base"],
                                         random=name in STATISTICAL)  # fmt: skip
        for output in outputs.values():
            subprocess.run(["rm", "-rf", str(output)], check=True)
        rows.append(row)
        last = time.monotonic() - began
        say("  " + ", ".join(f"{key} {value}" for key, value in row.items() if key not in ("preset", "bytes_out")))
    return rows


def markdown(facts: dict, speeds: dict, rows: list[dict]) -> str:
    devices = ["cuda", "cpu"] if facts["cuda"] else ["cpu"]
    heading = ["preset", "method", "floor s"]
    for device in devices:
        heading += [f"{device} s", f"{device} x floor", f"{device} RSS MiB"]
    if facts["cuda"]:
        heading += ["GPU MiB", "GPU util %", "outputs"]
    lines = [f"Machine: {', '.join(f'{key} {value}' for key, value in facts.items())}"]
    if speeds:
        lines.append(
            f"Pinned copies: host to device {speeds['h2d_gb_s']} GB/s, device to host {speeds['d2h_gb_s']} GB/s"
        )
    lines += ["", "| " + " | ".join(heading) + " |", "|" + " --- |" * len(heading)]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['preset']} | {row['method']} | skipped: {row['skipped']} |")
            continue
        cells = [row["preset"], row["method"], row["floor_s"]]
        for device in devices:
            cells += [row[f"{device}_seconds"], row[f"{device}_ratio"], row[f"{device}_peak_rss_mib"]]
        if facts["cuda"]:
            cells += [row.get("cuda_peak_gpu_mib", "-"), row.get("cuda_gpu_util_pct", "-"), row.get("agree", "-")]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="where device_check.json and device_check.md go")
    parser.add_argument("--cpu-only", action="store_true", help="no CUDA: the CPU half alone (CI runs this)")
    parser.add_argument("--presets", default="1b,7b", help=f"comma-separated, from {', '.join(PRESETS)}")
    parser.add_argument("--methods", help=f"comma-separated, from {', '.join(CHECKED)} (default: all of them)")
    parser.add_argument("--budget-s", type=float, default=420, help="stop starting work past this (default 420)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tui-merge-device-check"))
    args = parser.parse_args()
    started = time.monotonic()
    import torch

    cuda = torch.cuda.is_available() and not args.cpu_only
    if not args.cpu_only and not cuda:
        print("device_check: torch sees no CUDA device; give --cpu-only to check the CPU half", file=sys.stderr)
        return 2
    presets = args.presets.split(",")
    unknown = [name for name in presets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    facts = machine(cuda)
    speeds = bandwidth() if cuda else {}

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"{facts}  {speeds}")
    rows: list[dict] = []
    for preset in presets:
        if rows and time.monotonic() - started > args.budget_s / 2:
            say(f"{preset}: skipped, half the budget is spent")
            rows.append({"preset": preset, "method": "all", "skipped": "out of time"})
            continue
        rows += check_preset(preset, args, cuda, started, say)
        subprocess.run(["rm", "-rf", *[str(args.work / f"{preset}-{name}") for name in ("base", "ft1", "ft2")]],
                       check=True)  # fmt: skip
    table = markdown(facts, speeds, rows)
    (args.out / "device_check.json").write_text(json.dumps({"machine": facts, "bandwidth": speeds, "rows": rows},
                                                           indent=2, default=str))  # fmt: skip
    (args.out / "device_check.md").write_text(table)
    print(table)
    disagree = [row for row in rows if str(row.get("agree", "agree")) != "agree"]
    return 1 if disagree else 0


if __name__ == "__main__":
    sys.exit(main())
