"""mergekit-yaml 0.1.5's options on ``tui-merge run``, so a model card's command line runs with one word changed.

``mergekit-yaml config.yaml merge --copy-tokenizer --allow-crimes --out-shard-size 1B --lazy-unpickle`` is
printed on thousands of model cards. Typed as ``tui-merge run ...`` it works:

- options that mean something here do it, by writing the matching key of the config's ``tui_merge:`` block
  (so the recipe saved in the output replays the same merge without them): ``--cuda``/``--no-cuda`` and
  ``--device`` (``device``), ``--out-shard-size`` (``shard_size``; mergekit counts parameters, ``1B`` or
  ``500M``, turned into bytes at the config's output dtype, 2 bytes when it names none), ``--random-seed``
  (``seed``), ``--copy-tokenizer``/``--no-copy-tokenizer`` (``copy_tokenizer``),
  ``--unsafe-truncate-embeddings`` (``vocab: truncate``); ``--allow-crimes`` is ``run``'s own flag;
  ``-v`` prints progress as log lines, ``--quiet`` prints none;
- options that tui-merge makes unnecessary (it always streams tensor by tensor, writes safetensors, and
  chooses its threads) are accepted with one line saying why they change nothing;
- ``--trust-remote-code`` is refused: no code from a model is ever run; ``--no-safe-serialization`` is
  refused: outputs are always safetensors.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from typing import Any

import yaml

from tui_merge.config.loading import LoadedConfig, parse_config
from tui_merge.errors import BadInputError

UNNEEDED = {
    "lazy_unpickle": "tui-merge reads .bin checkpoints through torch's memory map, one tensor at a time",
    "low_cpu_memory": "tui-merge holds one tensor's inputs at a time whatever the device",
    "read_to_gpu": "tui-merge moves each tensor to the merge device as it reads it",
    "async_write": "tui-merge writes each shard while the next tensors merge",
    "num_threads": "tui-merge sets its CPU threads from the machine's cores",
    "clone_tensors": "tui-merge writes each output tensor on its own, repeated layers included",
    "safe_serialization": "outputs are always safetensors",
    "multi_gpu": "tui-merge merges one tensor at a time on one device",
    "gpu_rich": "tui-merge merges one tensor at a time on one device (give --cuda for the GPU)",
    "write_threads": "tui-merge writes each shard while the next tensors merge",
    "transformers_cache": "tui-merge reads the Hugging Face cache (HF_HUB_CACHE sets another)",
    "lora_merge_cache": "tui-merge applies an adapter tensor by tensor, with nothing cached",
    "lora_merge_dtype": "tui-merge applies an adapter in float32 and writes the output dtype",
    "write_model_card": "tui-merge always writes the model card (README.md) with the recipe",
}
"""mergekit-yaml's options that change nothing here, and why."""

_PARAMETER_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMB]?)\s*$", re.IGNORECASE)
_DTYPE_BYTES = {"float32": 4, "float64": 8}


def add_mergekit_flags(parser: argparse.ArgumentParser) -> None:
    """mergekit-yaml's options, in a group of their own in ``run --help``."""
    unneeded = ", ".join("--" + name.replace("_", "-") for name in UNNEEDED)
    about = (
        "accepted so a mergekit-yaml command line runs as tui-merge run; the ones below are written into the "
        f"recipe's tui_merge: block. Also accepted, changing nothing (each says why): {unneeded}. "
        "--trust-remote-code is refused: no code from a model is ever run."
    )
    group = parser.add_argument_group("mergekit-yaml's options", textwrap.fill(about, 76))
    group.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=None,
                       help="merge on the GPU (tui_merge.device: cuda), or --no-cuda on the CPU")  # fmt: skip
    group.add_argument("--device", help="merge on this device (cpu, cuda, cuda:N, auto)")
    group.add_argument("--out-shard-size", metavar="COUNT",
                       help="largest output shard in parameters, e.g. 1B or 500M (mergekit's unit)")  # fmt: skip
    group.add_argument("--random-seed", type=int, metavar="N", help="seed of the random methods")
    group.add_argument("--copy-tokenizer", action=argparse.BooleanOptionalAction, default=None,
                       help="copy the tokenizer into the output (the default)")  # fmt: skip
    group.add_argument("--unsafe-truncate-embeddings", action="store_true",
                       help="cut every vocabulary to the smallest (tui_merge.vocab: truncate)")  # fmt: skip
    group.add_argument("-v", "--verbose", action="count", default=0, help="progress as log lines")
    group.add_argument("--quiet", action="store_true", help="no progress, only the result")
    group.add_argument("--trust-remote-code", action="store_true", help=argparse.SUPPRESS)
    for name in UNNEEDED:
        flag = "--" + name.replace("_", "-")
        if name in ("num_threads", "write_threads"):
            flags = (flag, "-j") if name == "num_threads" else (flag,)
            group.add_argument(*flags, dest=name, type=int, metavar="N", help=argparse.SUPPRESS)
        elif name in ("transformers_cache", "lora_merge_cache", "lora_merge_dtype"):
            group.add_argument(flag, dest=name, help=argparse.SUPPRESS)
        else:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                               help=argparse.SUPPRESS)  # fmt: skip


def apply_mergekit_flags(loaded: LoadedConfig, args: argparse.Namespace) -> LoadedConfig:
    """``loaded`` with the meaningful flags written into its ``tui_merge:`` block; the unneeded ones said on
    stderr, the refused ones raised."""
    if args.trust_remote_code:
        raise BadInputError(
            "--trust-remote-code is refused: tui-merge never runs code from a model; it reads weights and "
            "config files only, so drop the flag."
        )
    if args.safe_serialization is False:
        raise BadInputError("--no-safe-serialization is refused: tui-merge writes safetensors only; drop the flag.")
    for name, why in UNNEEDED.items():
        if getattr(args, name) not in (None, False) or (name == "write_model_card" and args.write_model_card is False):
            flag = "--" + ("no-" if getattr(args, name) is False else "") + name.replace("_", "-")
            print(f"tui-merge: {flag} changes nothing here: {why}.", file=sys.stderr)
    options = _options(args, loaded)
    if not options:
        return loaded
    from tui_merge.cli.export_cmd import strip_block

    data = yaml.safe_load(loaded.text) or {}
    block = {**(data.get("tui_merge") or {}), **options}
    flags = " ".join(f"{key}: {value}" for key, value in options.items())
    text = strip_block(loaded.text, "tui_merge").rstrip("\n") + "\n"
    text += f"# tui_merge: from mergekit-yaml's options ({flags})\n"
    text += yaml.safe_dump({"tui_merge": block}, sort_keys=False)
    return parse_config(text, loaded.source)


def _options(args: argparse.Namespace, loaded: LoadedConfig) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.cuda is not None:
        options["device"] = "cuda" if args.cuda else "cpu"
    if args.device:
        options["device"] = args.device
    if args.out_shard_size:
        options["shard_size"] = parameters_to_bytes(args.out_shard_size, loaded.config.output_dtype)
    if args.random_seed is not None:
        options["seed"] = args.random_seed
    if args.copy_tokenizer is not None:
        options["copy_tokenizer"] = args.copy_tokenizer
    if args.unsafe_truncate_embeddings:
        options["vocab"] = "truncate"
    return options


def parameters_to_bytes(count: str, dtype: str | None) -> int:
    """mergekit's shard size (``1B`` parameters, ``500M``, ``10K``, a plain count) in bytes at ``dtype``."""
    match = _PARAMETER_COUNT.match(count)
    if match is None:
        raise BadInputError(
            f"--out-shard-size {count} is not a parameter count; write it as mergekit does, like 1B, 500M or 10K."
        )
    scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9}[match[2].lower()]
    return int(float(match[1]) * scale) * _DTYPE_BYTES.get(dtype or "", 2)
