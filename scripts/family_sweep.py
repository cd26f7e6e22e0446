"""Every model type transformers builds, shrunk to a tiny size: does tui-merge merge it as transformers loads it?

Run from the repository root: ``.venv/bin/python scripts/family_sweep.py [--jobs N] [types...]``. For each
model type of transformers' config mapping (or those named): its default config with the common size keys
shrunk (in the config and each sub-config), built by the first auto class that takes it, saved with
``save_pretrained`` as a base and a fine-tune (the base plus noise of 5 % of each tensor's spread), then merged
linearly with ``tui-merge run --verify``. Families run 16 to a child process, each with a time limit. The report
counts the families that merge, those transformers itself cannot build at this size (left out), and lists
every refusal by tui-merge with its first error line: each is a checkpoint transformers builds and loads,
so each is a bug unless the merge itself cannot be made right. Nothing here is a test; it takes a while.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SIZES = {
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 8, "d_model": 32, "d_ff": 64, "d_kv": 8, "num_layers": 2,
    "num_decoder_layers": 2, "num_heads": 4, "encoder_layers": 2, "decoder_layers": 2,
    "encoder_attention_heads": 4, "decoder_attention_heads": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64,
    "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 64, "max_position_embeddings": 64,
    "moe_intermediate_size": 32, "num_local_experts": 4, "num_experts": 4, "n_routed_experts": 4,
    "num_experts_per_tok": 2, "shared_expert_intermediate_size": 32, "depth": 2, "embed_dim": 32,
}  # fmt: skip
"""Size keys set wherever a config has them."""

CHILD = r"""
import contextlib, io, json, shutil, signal, sys, torch
from pathlib import Path
types, scratch, sizes, timeout = sys.argv[1].split(","), Path(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
import transformers
from transformers import AutoConfig
from transformers.utils import logging
from tui_merge.cli import main
logging.set_verbosity_error()


class TooLong(Exception):
    pass


def alarm(signum, frame):
    raise TooLong


signal.signal(signal.SIGALRM, alarm)


def shrink(config):
    for key, value in sizes.items():
        current = getattr(config, key, None)
        if isinstance(current, int) and not isinstance(current, bool):
            try:
                setattr(config, key, value)
            except Exception:
                pass
    for key in list(vars(config)):
        value = getattr(config, key, None)
        if isinstance(value, transformers.PretrainedConfig):
            shrink(value)
    depth = getattr(config, "num_hidden_layers", None)
    for key in ("layer_types", "mlp_layer_types", "layers_block_type"):
        value = getattr(config, key, None)
        if isinstance(value, list) and isinstance(depth, int) and len(value) > depth:
            setattr(config, key, value[:depth])
    return config


def build(model_type, folder):
    config = shrink(AutoConfig.for_model(model_type))
    errors = []
    for name in ("AutoModelForCausalLM", "AutoModelForImageTextToText", "AutoModelForSeq2SeqLM", "AutoModel"):
        try:
            model = getattr(transformers, name).from_config(config)
            break
        except Exception as error:
            errors.append(f"{type(error).__name__}: {str(error)[:80]}")
    else:
        raise RuntimeError(errors[-1].replace(chr(10), " "))
    if sum(p.numel() for p in model.parameters()) > 20_000_000:
        raise RuntimeError("too large")
    model.save_pretrained(folder / "a")
    try:
        _, info = type(model).from_pretrained(folder / "a", output_loading_info=True)
    except Exception as error:
        raise RuntimeError(f"transformers cannot load its own save: {type(error).__name__}: {str(error)[:80]}")
    if info["missing_keys"] or info["mismatched_keys"]:
        raise RuntimeError("transformers reloads its own save with missing or mismatched weights")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.is_floating_point() and parameter.numel() > 1:
                spread = parameter.std().nan_to_num()
                parameter.add_(0.05 * spread * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder / "b")


for model_type in types:
    folder = scratch / model_type
    signal.alarm(timeout)
    try:
        torch.manual_seed(0)
        try:
            build(model_type, folder)
        except TooLong:
            raise
        except Exception as error:
            print(f"RESULT {model_type}: NOT BUILT {type(error).__name__} {str(error)[:120]}", flush=True)
            continue
        recipe = f"merge_method: linear\nmodels:\n  - model: {folder / 'a'}\n  - model: {folder / 'b'}\n"
        (folder / "m.yaml").write_text(recipe)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = main(["run", str(folder / "m.yaml"), str(folder / "out"), "--verify"])
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        said = next((line for line in lines if "error" in line or "FAIL" in line), lines[-1] if lines else "")
        said = said.replace(str(folder) + "/", "")[:300]
        print(f"RESULT {model_type}: " + ("MERGED" if status == 0 else "REFUSED " + said), flush=True)
    except TooLong:
        print(f"RESULT {model_type}: NOT BUILT timeout", flush=True)
    except BaseException as error:
        print(f"RESULT {model_type}: CRASHED {type(error).__name__} {str(error)[:200]}", flush=True)
    finally:
        signal.alarm(0)
        if len(sys.argv) < 6:
            shutil.rmtree(folder, ignore_errors=True)
"""


def chunk(types: list[str], scratch: Path, timeout: int, keep: bool = False) -> list[tuple[str, str]]:
    """Run a few families in one child process (one import of torch and transformers for all of them)."""
    command = [sys.executable, "-c", CHILD, ",".join(types), str(scratch), json.dumps(SIZES), str(timeout)]
    command += ["keep"] if keep else []
    done = subprocess.run(command, capture_output=True, text=True)
    said = dict(line.removeprefix("RESULT ").split(": ", 1) for line in done.stdout.splitlines()
                if line.startswith("RESULT "))  # fmt: skip
    last = (done.stderr.strip().splitlines() or ["?"])[-1][:200]
    return [(name, said.get(name, f"CRASHED the child stopped: {last}")) for name in types]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("types", nargs="*", help="only these model types (default: every one)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=180, help="seconds a family may take")
    parser.add_argument("--keep", type=Path, help="build the models in this folder and keep them, to look into")
    args = parser.parse_args()
    from transformers import CONFIG_MAPPING

    types = args.types or sorted(CONFIG_MAPPING.keys())
    results: dict[str, str] = {}
    chunks = [types[start : start + 16] for start in range(0, len(types), 16)]
    with tempfile.TemporaryDirectory() as temporary, ThreadPoolExecutor(args.jobs) as pool:
        scratch = args.keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        for found in pool.map(lambda names: chunk(names, scratch, args.timeout, bool(args.keep)), chunks):
            for model_type, said in found:
                results[model_type] = said
                print(f"{model_type}: {said}", flush=True)
    kinds = Counter(said.split(" ")[0] for said in results.values())
    print(f"\n{len(results)} model types: " + ", ".join(f"{count} {kind.lower()}" for kind, count in kinds.items()))
    for model_type, said in results.items():
        if not said.startswith(("MERGED", "NOT BUILT")):
            print(f"  {model_type}: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
