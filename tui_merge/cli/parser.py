"""The argument parser: every command, its options and the examples its --help shows."""

from __future__ import annotations

import argparse
import textwrap

from tui_merge import __version__

_DESCRIPTION = """\
Merge the weights of fine-tuned language models: see whether models can be
merged before spending an hour on it, and (soon) merge them from a wizard or a
replayable config. Models are local folders or hub ids already in the local
Hugging Face cache; nothing is ever downloaded."""

_EXAMPLES = """\
examples:
  tui-merge demo                          build two tiny sample models and inspect them
  tui-merge inspect ./base ./chat         can these two be merged?
  tui-merge inspect meta-llama/Llama-2-7b-hf ./my-finetune --json
"""

_INSPECT_EXAMPLES = """\
examples:
  tui-merge inspect ./mistral-base ./mistral-chat ./mistral-code
  tui-merge inspect org/model-a org/model-b --base org/model-b
  tui-merge inspect ./a ./b --json > report.json

exit status: 0 mergeable, 1 an error-level finding, 2 bad input (missing
folder, damaged weights, unreadable config).
"""

_DEMO_EXAMPLES = """\
examples:
  tui-merge demo                    build (once) and inspect the sample models
  tui-merge demo --dir /tmp/demo    keep the sample models somewhere else
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``tui-merge`` parser with all subcommands."""
    parser = argparse.ArgumentParser(
        prog="tui-merge",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tui-merge {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    inspect = commands.add_parser(
        "inspect",
        help="show models side by side and every finding about merging them",
        description=textwrap.dedent(
            """\
            Show the models side by side (architecture, depth, width, heads, vocabulary,
            dtype, size) and every finding about merging them: errors that block a merge,
            warnings with the fixes that apply, and a lineage check that reads one small
            tensor of each model to tell fine-tunes of one base from unrelated models.
            Reads headers only; takes seconds even for 70B models."""
        ),
        epilog=_INSPECT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("models", nargs="+", metavar="MODEL", help="model folder or cached hub id (org/name[@rev])")
    inspect.add_argument(
        "--base", metavar="MODEL", help="the model the others are compared with (default: the first one)"
    )
    inspect.add_argument(
        "--method",
        metavar="NAME",
        help="the merge method you plan to use; passthrough accepts models of different depth",
    )
    inspect.add_argument("--json", action="store_true", help="print the table and findings as JSON")
    inspect.set_defaults(handler="tui_merge.cli.inspect_cmd:run")

    demo = commands.add_parser(
        "demo",
        help="build two tiny sample models (no download) and inspect them",
        description=textwrap.dedent(
            """\
            Build two tiny sample models (a llama-shaped base and a fine-tune of it,
            with a tokenizer) in a cache folder, once, and show what tui-merge sees in
            them. A first look at the whole flow in seconds, with no download."""
        ),
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--dir", metavar="FOLDER", help="where to keep the sample models (default: ~/.cache/tui-merge/demo)"
    )
    demo.add_argument("--rebuild", action="store_true", help="build the sample models again")
    demo.set_defaults(handler="tui_merge.cli.demo_cmd:run")
    return parser
