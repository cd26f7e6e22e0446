"""``tui-merge moe``: build a mixture of experts from a mergekit-moe config, a line per step."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.tools.moe_config import load_moe_config


def run(args: argparse.Namespace) -> int:
    """Read the config, inspect the models, build, then verify unless told not to."""
    from tui_merge.models.info import load_model_info
    from tui_merge.tools.moe import build_moe

    if args.load_in_4bit or args.load_in_8bit:
        raise BadInputError(
            "--load-in-4bit and --load-in-8bit quantize the base for the hidden-state routers with "
            "bitsandbytes, which tui-merge does not use; leave them out (the base runs in its dtype)."
        )
    config, text = load_moe_config(args.config, allow_all_same=args.i_understand_this_is_not_useful_without_training)
    base = load_model_info(config.base_model)
    experts = [load_model_info(expert.source_model) for expert in config.experts]
    shared = [load_model_info(expert.source_model) for expert in config.shared_experts or []]

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def stopped(number: int, frame: object) -> None:
        raise KeyboardInterrupt  # the build keeps its finished shards in OUT.partial for --resume

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        plan = build_moe(config, text, base, experts, Path(args.output), shared=shared, force=args.force,
                         device="cuda" if args.cuda else args.device, shard_size=args.out_shard_size,
                         resume=args.resume, again=f"tui-merge moe {args.config} {args.output}", say=say)  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"Built a mixture of {len(config.experts)} experts ({len(plan)} tensors) in {args.output}; its config is "
          f"saved there as mergekit_moe_config.yml.")  # fmt: skip
    if not args.verify:
        return 0
    from tui_merge.engine.verification import check_line, verify_output

    report = verify_output(Path(args.output))
    for check in report.checks:
        print(f"  {check_line(check)}")
    return 0 if report.ok else 1
