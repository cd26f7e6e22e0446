"""Merge speed and memory against the machine's own floor, on synthetic Llama-shaped bf16 checkpoints.

Run from the repository root (not part of the test suite; it writes gigabytes):

    .venv/bin/python benchmarks/merge_speed.py --preset 1b
    .venv/bin/python benchmarks/merge_speed.py --preset 0.5b --methods linear,ties2 --json out.json
    .venv/bin/python benchmarks/merge_speed.py --preset moe64 --methods linear,ties2
    sudo .venv/bin/python benchmarks/merge_speed.py --preset 1b --methods linear,ties2 --cache cold

It builds a base and two fine-tunes (base plus small deltas) under
``--work`` once, measures the floor in the same run (importing torch, reading
the inputs once, writing an output of the same size with fsync, one float32
pass over the data), then runs ``tui-merge run`` once per method as a
separate process and prints wall time, its ratio to the floor, throughput
(output bytes per second) and peak RSS (from ``wait4`` for that process).
Each timed run gets an empty ``TUI_MERGE_CACHE``: a first run, as a user meets it. Each floor and merge starts
with the inputs in the page cache (``--cache warm``, the default), or with the page cache dropped (``--cache
cold``, as the first merge after a download meets its inputs; it needs root, and refuses to run without it).

``--against-mergekit PYTHON`` (a Python whose environment has mergekit; it
is never a dependency of this project) runs mergekit's ``mergekit-yaml`` on
the same config right after each of our runs, alternating the two tools,
and adds its wall time, the ratio of ours to it, its peak RSS and whether
the outputs agree: deterministic methods to within one bfloat16 step on
99.9% of the values; random ones (dare, della) and those that keep the k
largest values (ties, breadcrumbs, sce) by the norm of the change from the
base (within 2% plus 3/sqrt(n) per tensor of n values: different draws move
a small tensor's norm by chance), since bfloat16 inputs put many magnitudes
exactly at the cut and mergekit keeps an unordered subset of them
(``argsort`` without a stable order) where tui-merge keeps them by index. Both compute in float32 and write
bfloat16 (``dtype: float32``, ``out_dtype: bfloat16``). A method mergekit
does not have is shown as ``-``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

PRESETS = {
    # name: (hidden, layers, intermediate, vocab, heads)
    "tiny": (256, 2, 512, 1000, 4),  # seconds, for checking the benchmarks themselves (CI runs device_check on it)
    "0.5b": (1536, 12, 4096, 32000, 12),
    "1b": (2048, 16, 5632, 32000, 16),
    "2b": (2560, 22, 6912, 32000, 20),
    "7b": (4096, 32, 11008, 32000, 32),
}

MOE_PRESETS = {
    # name: (hidden, layers, expert intermediate, vocab, heads, experts, experts stored fused)
    "moe64": (768, 6, 384, 32000, 12, 64, False),
    "moe64_fused": (768, 6, 384, 32000, 12, 64, True),
}
"""qwen3_moe-shaped mixtures of 64 experts a layer: one tensor per expert matrix (``mlp.experts.7.up_proj``), or
every expert of a layer in two tensors (``mlp.experts.gate_up_proj`` [64, 2 x 384, 768]) that tui-merge merges
matrix by matrix; either way memory must stay as flat as for a dense model."""

METHODS = {
    "linear": "merge_method: linear\nmodels:\n  - model: {base}\n  - model: {ft1}\nparameters: {{weight: 0.5}}\n",
    "slerp": "merge_method: slerp\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {ft1}\n"
    "parameters: {{t: 0.5}}\n",
    "ties1": "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {ft1}\n"
    "    parameters: {{weight: 1.0, density: 0.5}}\n",
    "ties2": "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {ft1}\n"
    "    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {ft2}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
    "dare_ties2": "merge_method: dare_ties\nbase_model: {base}\nmodels:\n  - model: {ft1}\n"
    "    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {ft2}\n    parameters: {{weight: 0.5, density: 0.5}}\n",
    "della2": "merge_method: della\nbase_model: {base}\nmodels:\n  - model: {ft1}\n"
    "    parameters: {{weight: 0.5, density: 0.5, epsilon: 0.1}}\n  - model: {ft2}\n"
    "    parameters: {{weight: 0.5, density: 0.5, epsilon: 0.1}}\n",
}
"""The issue's reference methods: what runs by default."""

OTHER_METHODS = {
    "breadcrumbs2": "merge_method: breadcrumbs_ties\nbase_model: {base}\nmodels:\n  - model: {ft1}\n"
    "    parameters: {{weight: 0.5, density: 0.5, gamma: 0.01}}\n  - model: {ft2}\n"
    "    parameters: {{weight: 0.5, density: 0.5, gamma: 0.01}}\n",
    "sce2": "merge_method: sce\nbase_model: {base}\nmodels:\n  - model: {ft1}\n  - model: {ft2}\n"
    "parameters: {{select_topk: 0.5}}\n",
    "model_stock2": "merge_method: model_stock\nbase_model: {base}\nmodels:\n  - model: {ft1}\n  - model: {ft2}\n",
    "nuslerp2": "merge_method: nuslerp\nbase_model: {base}\nmodels:\n  - model: {ft1}\n    parameters: {{weight: 1}}\n"
    "  - model: {ft2}\n    parameters: {{weight: 1}}\n",
    "multislerp2": "merge_method: multislerp\nbase_model: {base}\nmodels:\n  - model: {ft1}\n"
    "    parameters: {{weight: 1}}\n  - model: {ft2}\n    parameters: {{weight: 1}}\n",
    "karcher3": "merge_method: karcher\nmodels:\n  - model: {base}\n  - model: {ft1}\n  - model: {ft2}\n",
    "ramplus2": "merge_method: ramplus_tl\nbase_model: {base}\nmodels:\n  - model: {ft1}\n  - model: {ft2}\n",
    "arcee_fusion": "merge_method: arcee_fusion\nbase_model: {base}\nmodels:\n  - model: {ft1}\n",
    "circuit2": "merge_method: circuit\nbase_model: {base}\nmodels:\n  - model: {ft1}\n  - model: {ft2}\n",
}
"""The other methods with a block path; ``--methods all`` adds them."""

ALL_METHODS = METHODS | OTHER_METHODS


@dataclass
class Row:
    """One measured run."""

    name: str
    seconds: float
    ratio_to_floor: float
    throughput_mb_s: float
    peak_rss_mib: float


def tensor_shapes(hidden: int, layers: int, intermediate: int, vocab: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, hidden)}
    for layer in range(layers):
        prefix = f"model.layers.{layer}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{prefix}self_attn.{name}.weight"] = (hidden, hidden)
        shapes[f"{prefix}mlp.gate_proj.weight"] = (intermediate, hidden)
        shapes[f"{prefix}mlp.up_proj.weight"] = (intermediate, hidden)
        shapes[f"{prefix}mlp.down_proj.weight"] = (hidden, intermediate)
        shapes[f"{prefix}input_layernorm.weight"] = (hidden,)
        shapes[f"{prefix}post_attention_layernorm.weight"] = (hidden,)
    shapes["model.norm.weight"] = (hidden,)
    shapes["lm_head.weight"] = (vocab, hidden)
    return shapes


def moe_tensor_shapes(hidden: int, layers: int, intermediate: int, vocab: int, heads: int, experts: int,
                      fused: bool) -> dict[str, tuple[int, ...]]:  # fmt: skip
    shapes = {
        name: shape for name, shape in tensor_shapes(hidden, layers, intermediate, vocab).items() if ".mlp." not in name
    }
    for layer in range(layers):
        shapes[f"model.layers.{layer}.self_attn.q_norm.weight"] = (hidden // heads,)
        shapes[f"model.layers.{layer}.self_attn.k_norm.weight"] = (hidden // heads,)
        prefix = f"model.layers.{layer}.mlp."
        shapes[f"{prefix}gate.weight"] = (experts, hidden)
        if fused:
            shapes[f"{prefix}experts.gate_up_proj"] = (experts, 2 * intermediate, hidden)
            shapes[f"{prefix}experts.down_proj"] = (experts, hidden, intermediate)
            continue
        for expert in range(experts):
            shapes[f"{prefix}experts.{expert}.gate_proj.weight"] = (intermediate, hidden)
            shapes[f"{prefix}experts.{expert}.up_proj.weight"] = (intermediate, hidden)
            shapes[f"{prefix}experts.{expert}.down_proj.weight"] = (hidden, intermediate)
    return shapes


def build_models(work: Path, preset: str, device: str = "cpu", fine_tunes: int = 2) -> dict[str, Path]:
    """Base and ``fine_tunes`` fine-tunes of the preset, built once and reused; drawn on ``device`` (a GPU draws a
    7B preset in seconds), saved from the host."""
    import torch
    from safetensors.torch import save_file

    folders = {name: work / f"{preset}-{name}" for name in ("base", "ft1", "ft2")[: 1 + fine_tunes]}
    if all((folder / "model.safetensors").is_file() for folder in folders.values()):
        return folders
    if preset in MOE_PRESETS:
        hidden, layers, intermediate, vocab, heads, experts, fused = MOE_PRESETS[preset]
        shapes = moe_tensor_shapes(hidden, layers, intermediate, vocab, heads, experts, fused)
        family = {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": experts,
                  "num_experts_per_tok": 8, "moe_intermediate_size": intermediate, "decoder_sparse_step": 1,
                  "mlp_only_layers": [], "intermediate_size": 4 * intermediate,
                  "head_dim": hidden // heads}  # fmt: skip
    else:
        hidden, layers, intermediate, vocab, heads = PRESETS[preset]
        shapes = tensor_shapes(hidden, layers, intermediate, vocab)
        family = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "intermediate_size": intermediate}
    config = family | {
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": heads, "vocab_size": vocab, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }  # fmt: skip
    generator = torch.Generator(device).manual_seed(0)

    def draw(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=device)

    base = {name: (draw(shape) * 0.02).to(torch.bfloat16) for name, shape in shapes.items()}
    for name, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        if name == "base":
            state = {key: value.cpu() for key, value in base.items()}
        else:
            state = {
                key: (value.float() + draw(value.shape) * 0.002).to(torch.bfloat16).cpu() for key, value in base.items()
            }
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
        del state
    return folders


def settle(inputs: list[Path]) -> None:
    """Start every measured run from the same state: no other run's writes still on their way to disk (mergekit
    does not sync its output, so its last output would otherwise be flushed during the next run) and the
    inputs read once (a warm page cache)."""
    os.sync()
    buffer = memoryview(bytearray(64 << 20))
    for folder in inputs:
        for path in sorted(folder.glob("*.safetensors")):
            with open(path, "rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass


def drop_page_cache() -> bool:
    """Write back and then empty the page cache, so the next run reads its inputs from the disk (a cold cache,
    as the first merge after a download meets it); False where that is not permitted (it needs root on Linux)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def start_from(inputs: list[Path], cache: str) -> None:
    """``settle`` for a warm cache; for a cold one, the inputs' pages (and every other) dropped."""
    if cache == "warm":
        settle(inputs)
    elif not drop_page_cache():
        raise SystemExit("--cache cold: the page cache cannot be dropped here (it needs root on Linux); "
                         "measure with --cache warm and say so.")  # fmt: skip


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS in MiB of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


@contextmanager
def first_run():
    """An environment whose tui-merge cache is empty, so each timed run is a first run as a user meets it (a
    warm cache skips transformers' check of the output's config: 3.5 s first, 1.3 s after, on a tiny model)."""
    with tempfile.TemporaryDirectory(prefix="tui-merge-cache-") as cache:
        yield {**os.environ, "TUI_MERGE_CACHE": cache}


FLOOR_SCRIPT = """
import os, sys, time
import torch
started = time.perf_counter()
inputs, output = sys.argv[1:-1], sys.argv[-1]
size = os.path.getsize(inputs[0])
buffer = bytearray(64 << 20)
view = memoryview(buffer)
for path in inputs:
    with open(path, "rb", buffering=0) as handle:
        while handle.readinto(view):
            pass
read = time.perf_counter()
chunk = torch.frombuffer(buffer, dtype=torch.bfloat16)
done = 0
while done < size * len(inputs):
    (chunk.float() * 0.5).to(torch.bfloat16)
    done += len(buffer)
computed = time.perf_counter()
with open(output, "wb") as handle:
    written = 0
    while written < size:
        written += handle.write(view[: min(len(buffer), size - written)])
    handle.flush()
    os.fsync(handle.fileno())
os.unlink(output)
print(read - started, computed - read, time.perf_counter() - computed)
"""


BUSY_WRITER = """
import os, sys
path, chunk = sys.argv[1], os.urandom(64 << 20)
while True:
    with open(path, "wb") as handle:
        for step in range(32):  # 2 GiB, then the file starts again: the disk stays busy, never full
            handle.write(chunk)
            if step % 4 == 3:
                os.fsync(handle.fileno())
"""


@contextmanager
def busy_disk(work: Path, busy: bool):
    """While it is open, another process writes gigabytes to ``work``'s disk (``--busy-disk``), as another user's
    job on a shared server does."""
    if not busy:
        yield
        return
    target = work / "busy-writer.bin"
    writer = subprocess.Popen([sys.executable, "-c", BUSY_WRITER, str(target)])
    try:
        time.sleep(2)  # its dirty pages build up first
        yield
    finally:
        writer.kill()
        writer.wait()
        target.unlink(missing_ok=True)


def floor(inputs: list[Path], work: Path) -> tuple[float, float]:
    """Seconds for: start Python and import torch, read the inputs, one float32 pass, write one output."""
    seconds, rss = measure([sys.executable, "-c", FLOOR_SCRIPT, *map(str, inputs), str(work / "floor.bin")])
    return seconds, rss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS | MOE_PRESETS), default="1b")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated, or 'all'; from {', '.join(ALL_METHODS)} (default: {', '.join(METHODS)})",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/tui-merge-bench"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N",
        help="run each merge N times and report the medians (peak RSS varies by some 20 MiB from run to run)",
    )  # fmt: skip
    parser.add_argument("--against-mergekit", metavar="PYTHON",
                        help="a Python with mergekit installed: run it on the same configs, alternating")  # fmt: skip
    parser.add_argument("--cache", choices=("warm", "cold"), default="warm",
                        help="start each floor and merge with the inputs in the page cache (warm, the default) or "
                             "with the page cache dropped (cold: needs root)")  # fmt: skip
    parser.add_argument("--busy-disk", action="store_true",
                        help="a background process writes gigabytes to the work folder's disk throughout")  # fmt: skip
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--build-device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--fine-tunes", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.build_only:
        build_models(args.work, args.preset, args.build_device, args.fine_tunes)
        return 0
    print(f"building the {args.preset} models in {args.work} (once)…", flush=True)
    # In a child process: a forked child's peak RSS starts from its parent's, so the parent must stay small.
    subprocess.run([sys.executable, __file__, "--build-only", "--preset", args.preset, "--work", str(args.work)],
                   check=True)  # fmt: skip
    models = {name: args.work / f"{args.preset}-{name}" for name in ("base", "ft1", "ft2")}
    size = (models["base"] / "model.safetensors").stat().st_size
    names = list(ALL_METHODS) if args.methods == "all" else args.methods.split(",")
    unknown = [name for name in names if name not in ALL_METHODS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(ALL_METHODS)} or 'all'")
    disk = "a busy disk (another process writing)" if args.busy_disk else "a quiet disk"
    print(f"each floor and merge starts with a {args.cache} page cache, on {disk}", flush=True)
    with busy_disk(args.work, args.busy_disk):
        rows, versus = measure_methods(args, names, models, size)
    if versus:
        print("\n| method | tui-merge s | mergekit s | ratio | tui-merge RSS MiB | mergekit RSS MiB | outputs |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, ours, theirs_s, rss, their_rss, agreement in versus:
            ratio = f"{ours / theirs_s:.2f}" if theirs_s else "-"
            shown = f"{theirs_s:.2f}" if theirs_s else "-"
            their_memory = f"{their_rss:.0f}" if their_rss else "-"
            print(f"| {name} | {ours:.2f} | {shown} | {ratio} | {rss:.0f} | {their_memory} | {agreement} |")
    if args.json:
        table = {"preset": args.preset, "bytes_per_model": size, "cache": args.cache, "busy_disk": args.busy_disk,
                 "rows": [asdict(row) for row in rows], "versus": versus}  # fmt: skip
        args.json.write_text(json.dumps(table, indent=2))
    return 0


def measure_methods(
    args: argparse.Namespace, names: list[str], models: dict[str, Path], size: int
) -> tuple[list, list]:
    """Each method's floor and runs (and mergekit's, with ``--against-mergekit``), printed as they end."""
    rows, versus = [], []
    for name in names:
        text = ALL_METHODS[name].format(**{key: str(folder) for key, folder in models.items()})
        uses_two = "ft2" in text
        inputs = [models["base"], models["ft1"], *([models["ft2"]] if uses_two else [])]
        config = args.work / f"{name}.yaml"
        precision = "dtype: float32\nout_dtype: bfloat16\n" if args.against_mergekit else ""
        config.write_text(text + precision + f"tui_merge: {{device: {args.device}}}\n")
        output = args.work / f"out-{name}"
        subprocess.run(["rm", "-rf", str(output), str(output) + ".partial"], check=True)
        command = [sys.executable, "-m", "tui_merge", "run", str(config), str(output)]
        runs, floors, theirs, agreement, refusal = [], [], [], None, ""
        for _ in range(max(1, args.repeat)):  # the floor and the merge alternate: medians of runs side by side
            start_from(inputs, args.cache)
            floors.append(floor([folder / "model.safetensors" for folder in inputs], args.work)[0])
            start_from(inputs, args.cache)
            with first_run() as environment:
                runs.append(measure(command, environment))
            if args.against_mergekit:
                start_from(inputs, args.cache)
                result = against_mergekit(args.against_mergekit, text + precision, args.work, name)
                if isinstance(result, str):
                    refusal = result
                else:
                    theirs.append(result[:2])
                    agreement = compared_in_a_child(output, result[2], models["base"], name)
                    subprocess.run(["rm", "-rf", str(result[2])], check=True)  # its pages would crowd the cache
            subprocess.run(["rm", "-rf", str(output)], check=True)
        seconds = statistics.median(run[0] for run in runs)
        floor_seconds = statistics.median(floors)
        rss = statistics.median(run[1] for run in runs)
        if args.against_mergekit:
            if theirs:
                their_seconds = statistics.median(run[0] for run in theirs)
                their_rss = statistics.median(run[1] for run in theirs)
                print(f"  {'':<11} mergekit {their_seconds:6.2f} s  ours/theirs x{seconds / their_seconds:4.2f}  "
                      f"peak RSS {their_rss:6.0f} MiB  outputs {agreement}", flush=True)  # fmt: skip
                versus.append((name, seconds, their_seconds, rss, their_rss, agreement))
            else:
                print(f"  {'':<11} mergekit: -  ({refusal})", flush=True)
                versus.append((name, seconds, None, rss, None, f"- ({refusal})"))
        rows.append(Row(name, round(seconds, 2), round(seconds / floor_seconds, 2), round(size / seconds / 1e6),
                        round(rss)))  # fmt: skip
        print(f"  {name:<11} {seconds:6.2f} s  floor {floor_seconds:5.2f} s  x{seconds / floor_seconds:4.2f}  "
              f"{size / seconds / 1e6:6.0f} MB/s  peak RSS {rss:6.0f} MiB", flush=True)  # fmt: skip
    return rows, versus


def against_mergekit(python: str, text: str, work: Path, name: str) -> tuple[float, float, Path] | str:
    """mergekit-yaml on the same config: (seconds, peak RSS MiB, output), or the last line of its refusal."""
    config = work / f"{name}.mergekit.yaml"
    config.write_text(text)
    output = work / f"out-{name}-mergekit"
    subprocess.run(["rm", "-rf", str(output)], check=True)
    command = [python, "-m", "mergekit.scripts.run_yaml", str(config), str(output), "--no-cuda", "--allow-crimes"]
    try:
        seconds, rss = measure(command)
    except SystemExit as failure:
        lines = [line.strip() for line in str(failure).splitlines() if line.strip()]
        return lines[-1][:80] if lines else "failed"
    return seconds, rss, output


def compared_in_a_child(ours: Path, theirs: Path, base: Path, name: str) -> str:
    """``outputs_agree`` in a child process: the comparison loads tensors, and a child forked from a large
    parent would report the parent's memory as its own peak."""
    statistical = name.startswith(("dare", "della", "ties", "breadcrumbs", "sce"))
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); from merge_speed import outputs_agree; "
              f"print(outputs_agree(__import__('pathlib').Path({str(ours)!r}), __import__('pathlib').Path("
              f"{str(theirs)!r}), __import__('pathlib').Path({str(base)!r}), random={statistical}))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"not compared ({done.stderr.strip().splitlines()[-1][:60]})"


def outputs_agree(ours: Path, theirs: Path, base: Path, *, random: bool) -> str:
    """Whether two merged folders hold the same tensors: ``agree`` or what differs, in a few words."""
    import torch
    from safetensors import safe_open

    def tensors(folder: Path) -> dict[str, tuple[Path, str]]:
        found = {}
        for path in sorted(folder.glob("*.safetensors")):
            with safe_open(path, "pt") as handle:
                found.update({key: (path, key) for key in handle.keys()})  # noqa: SIM118 - safe_open is no dict
        return found

    mine, other, reference = tensors(ours), tensors(theirs), tensors(base)
    if set(mine) != set(other):
        return f"differ: {len(set(mine) ^ set(other))} names"
    worst = 0.0
    for key in sorted(mine):
        with safe_open(mine[key][0], "pt") as a, safe_open(other[key][0], "pt") as b:
            x, y = a.get_tensor(key).float(), b.get_tensor(key).float()
        if random:
            with safe_open(reference[key][0], "pt") as handle:
                origin = handle.get_tensor(key).float()
            norms = (float((x - origin).norm()), float((y - origin).norm()))
            if max(norms) > 0:
                # Different draws change the norm by chance, by about 1/sqrt(n) of it: a 2048-value norm
                # vector moves by a few percent, a 4M-value matrix by a few hundredths of one.
                allowed = 0.02 + 3 / x.numel() ** 0.5
                worst = max(worst, abs(norms[0] - norms[1]) / max(norms) / allowed)
            continue
        step = torch.maximum(x.abs(), y.abs()) * 2**-7 + 1e-30  # one bfloat16 step at these values
        beyond = float(((x - y).abs() > step).float().mean())
        worst = max(worst, beyond / 0.001)
    return "agree" if worst <= 1 else f"differ ({worst:.2f}x the allowed difference)"


if __name__ == "__main__":
    sys.exit(main())
