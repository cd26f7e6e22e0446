"""``tui-merge run``: replay a config headlessly, with progress a person or a log file can read."""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_merge.cli.mergekit_flags import apply_mergekit_flags
from tui_merge.config.loading import MAX_CONFIG_BYTES, parse_config, read_text
from tui_merge.engine.job import MergeJob, plan_job
from tui_merge.engine.plan import Plan
from tui_merge.errors import BadInputError
from tui_merge.headless import run_in_console
from tui_merge.plan_view import plan_summary
from tui_merge.tools.stages import is_multi_stage


def run(args: argparse.Namespace) -> int:
    """Validate, plan and (unless --dry-run) merge."""
    output = args.output_option or args.output
    if args.output_option and args.output and args.output_option != args.output:
        raise BadInputError(f"Two outputs given ({args.output} and -o {args.output_option}); give one.")
    text = read_text(Path(args.config), "Config file", MAX_CONFIG_BYTES)
    if is_multi_stage(text):
        from tui_merge.cli.stages_cmd import run_stages

        return run_stages(args, text, output)
    if args.stage or args.intermediate_dir:
        raise BadInputError(f"{args.config} is one merge, not a multi-stage recipe; --stage and "
                            "--intermediate-dir apply to recipes of several documents.")  # fmt: skip
    loaded = apply_mergekit_flags(parse_config(text, str(args.config)), args)
    if args.dry_run:
        plan = plan_job(MergeJob(loaded, Path(output or "."), allow_crimes=args.allow_crimes))
        print_plan(plan, Path(output) if output else None)
        return 0
    if not output:
        raise BadInputError("No output folder given; add it after the config or with -o OUT.")
    job = MergeJob(
        loaded, Path(output), replace=args.force, resume=args.resume, keep_partial=True,
        allow_nonfinite=args.allow_nonfinite, verify=args.verify, allow_crimes=args.allow_crimes,
        download=args.download,
    )  # fmt: skip
    return run_in_console(job, plain_progress=args.verbose > 0, quiet=args.quiet)


def print_plan(plan: Plan, output: Path | None) -> None:
    """The dry-run summary: what would be read and written, and whether it fits."""
    from tui_merge.engine.download import needed_files
    from tui_merge.units import human_bytes

    warnings = [f"warning: {warning}" for warning in plan.warnings]
    hub = [
        f"  from the Hub   {group.repo.repo_id}@{group.repo.commit[:12]}: {len(group.files)} of its files, "
        f"{human_bytes(group.nbytes)} to download (run with --download)"
        for group in needed_files(ref.entry for task in plan.tasks for ref in task.reads)
    ]
    done = "The config is valid; nothing was written (dry run)."
    print("\n".join([*warnings, *plan_summary(plan, output), *hub, done]))
