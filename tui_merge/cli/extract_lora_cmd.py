"""``tui-merge extract-lora``: cut a LoRA adapter from a fine-tune and its base, a line per module."""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.tools.extract_lora import ExtractionOptions, ModuleResult, check_options, extract_lora
from tui_merge.units import human_bytes


def run(args: argparse.Namespace) -> int:
    """Inspect both models, cut the adapter with a line per tensor, then a summary."""
    from tui_merge.models.info import load_model_info

    output = args.out_path or args.output
    if args.out_path and args.output and args.out_path != args.output:
        raise BadInputError(f"The adapter's folder is given twice ({args.output} and --out-path {args.out_path}).")
    if not output:
        raise BadInputError("Name the adapter's folder: tui-merge extract-lora --model FT --base BASE OUT.")
    options = ExtractionOptions(
        max_rank=args.max_rank, sv_epsilon=args.sv_epsilon, relative_threshold=args.relative_threshold,
        modules_to_save=tuple(args.modules_to_save), include=tuple(args.include), exclude=tuple(args.exclude),
        distribute_scale=args.distribute_scale, skip_undecomposable=args.skip_undecomposable, dtype=args.dtype,
        device="cuda" if args.cuda else args.device,
    )  # fmt: skip
    check_options(options)
    base, tuned = load_model_info(args.base), load_model_info(args.model)
    print(f"extracting what {tuned.label} changed in {base.label} (max rank {options.max_rank})", file=sys.stderr)
    width = len(str(len(tuned.tensors)))

    def said(result: ModuleResult, done: int, total: int) -> None:
        if result.treatment == "skip" and result.reason == "unchanged":
            return
        where = f"[{done:>{width}}/{total}]"
        if result.treatment == "lora":
            line = f"rank {result.rank:>4}  captures {result.captured:7.2%} of the difference"
        elif result.treatment == "whole":
            line = f"saved whole ({result.reason})"
        else:
            line = f"left out ({result.reason})"
        print(f"{where} {result.name.removesuffix('.weight')}  {line}", file=sys.stderr, flush=True)

    def stopped(number: int, frame: object) -> None:
        raise KeyboardInterrupt  # the extraction keeps its finished tensors in OUT.partial for --resume

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        again = " ".join(["tui-merge", *args.argv]).replace(" --resume", "")
        summary = extract_lora(base, tuned, Path(output), options, base_reference=args.base, force=args.force,
                               resume=args.resume, again=again, on_module=said)  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
    lora, modules = summary.lora, summary.modules
    whole = sum(1 for module in modules if module.treatment == "whole")
    unchanged = sum(1 for module in modules if module.reason == "unchanged")
    ranks = sorted(module.rank for module in lora)
    if lora:
        captured = statistics.median(module.captured for module in lora)
        lowest = min(lora, key=lambda module: module.captured)
        print(f"{len(lora)} modules as LoRA, ranks {ranks[0]}-{ranks[-1]}, median {captured:.2%} of each difference "
              f"captured (least: {lowest.name.removesuffix('.weight')}, {lowest.captured:.2%})")  # fmt: skip
    print(f"{whole} tensors saved whole, {unchanged} unchanged left out; {human_bytes(summary.bytes_written)} in "
          f"{output}")  # fmt: skip
    print(f"apply it: models: [{{model: {args.base}+{output}}}] in a config for tui-merge run")
    return 0
