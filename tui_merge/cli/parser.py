"""The argument parser: every command, its options and the examples its --help shows."""

from __future__ import annotations

import argparse
import textwrap

from tui_merge import __version__

_DESCRIPTION = """\
Merge the weights of fine-tuned language models: see whether models can be
merged before spending an hour on it, merge them from a keyboard-only wizard or
a replayable config, and verify the result. Models are local folders or hub ids already in the local
Hugging Face cache; nothing is ever downloaded."""

_EXAMPLES = """\
examples:
  tui-merge                               open the wizard
  tui-merge demo                          the wizard on tiny sample models, no download
  tui-merge inspect ./base ./chat         can these two be merged?
  tui-merge template ./base ./chat --method slerp -o merge.yaml
  tui-merge run merge.yaml ./merged       merge headlessly from a config
  tui-merge verify ./merged               is the merged folder sound?
  tui-merge methods ties                  what ties does and its parameters
"""

_RUN_EXAMPLES = """\
examples:
  tui-merge run merge.yaml ./merged             merge (mergekit's argument order)
  tui-merge run merge.yaml -o ./merged          the same
  tui-merge run merge.yaml --dry-run            validate and show the plan, write nothing
  nohup tui-merge run merge.yaml ./merged > merge.log 2>&1 &
  tui-merge run merge.yaml ./merged --resume    continue after Ctrl-C, kill or a lost SSH session

The config speaks mergekit's YAML dialect; options of our own go under
tui_merge: (vocab, shard_size, device, seed, copy_tokenizer). Vocabularies of
different sizes need tui_merge: {vocab: truncate | pad | union} or mergekit's
tokenizer_source: union | base | model:PATH. Output is written to OUT.partial
and renamed to OUT only when complete. Ctrl-C, SIGTERM or SIGHUP stop after the
current tensor and keep the finished shards for --resume (a second Ctrl-C
stops at once).
exit status: 0 merged, 1 the merge failed, 2 bad input, 130 interrupted.
"""

_TEMPLATE_EXAMPLES = """\
examples:
  tui-merge template ./base ./chat --method slerp -o merge.yaml
  tui-merge template ./base ./chat ./code --method ties --base ./base -o ties.yaml
"""

_INSPECT_EXAMPLES = """\
examples:
  tui-merge inspect ./mistral-base ./mistral-chat ./mistral-code
  tui-merge inspect org/model-a org/model-b --base org/model-b
  tui-merge inspect ./a ./b --json > report.json

exit status: 0 mergeable, 1 an error-level finding, 2 bad input (missing
folder, damaged weights, unreadable config).
"""

_VERIFY_EXAMPLES = """\
examples:
  tui-merge verify ./merged                 structural checks, one tensor at a time
  tui-merge verify ./merged --probe         and a perplexity comparison with the parents
  tui-merge run merge.yaml ./merged --verify

exit status: 0 every check passed, 1 a check failed, 2 bad input.
"""
_DEMO_EXAMPLES = """\
examples:
  tui-merge demo                    build the sample models (once) and open the wizard
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

    run = commands.add_parser(
        "run",
        help="merge models from a config file, headlessly",
        description="Validate a merge config, plan every output tensor, and merge with progress.",
        epilog=_RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("config", metavar="CONFIG", help="the merge config (YAML)")
    run.add_argument("output", metavar="OUT", nargs="?", help="output folder")
    run.add_argument("-o", "--output", dest="output_option", metavar="OUT", help="output folder")
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan; write nothing")
    run.add_argument("--force", action="store_true", help="replace an existing OUT, once the merge has succeeded")
    run.add_argument(
        "--resume", action="store_true", help="continue an interrupted merge from OUT.partial (same config and inputs)"
    )
    run.add_argument(
        "--allow-nonfinite", action="store_true", help="merge inputs that hold NaN or Inf (the result is still checked)"
    )
    run.add_argument("--verify", action="store_true", help="run tui-merge verify on OUT once the merge is done")
    run.set_defaults(handler="tui_merge.cli.run_cmd:run")

    methods = commands.add_parser(
        "methods",
        help="list the merge methods, or describe one",
        description="List the merge methods with what they do, or show one method's parameters and defaults.",
        epilog="examples:\n  tui-merge methods\n  tui-merge methods ties\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    methods.add_argument("name", nargs="?", metavar="NAME", help="a method to describe")
    methods.set_defaults(handler="tui_merge.cli.methods_cmd:run")

    template = commands.add_parser(
        "template",
        help="write a commented config with every layer's value, to edit and run",
        description=textwrap.dedent(
            """\
            Write a commented merge config for these models: every layer's value on its
            own line, explicit rows for embeddings, final norm and head. Edit it in any
            text editor and replay it with tui-merge run."""
        ),
        epilog=_TEMPLATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    template.add_argument("models", nargs="+", metavar="MODEL", help="model folder or cached hub id")
    template.add_argument("--method", default="linear", help="merge method (default: linear)")
    template.add_argument(
        "--base", metavar="MODEL", help="the base model (default: the first, for methods that use one)"
    )
    template.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the config")
    template.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    template.set_defaults(handler="tui_merge.cli.template_cmd:run")

    export = commands.add_parser(
        "export",
        help="print a config as a plain mergekit recipe",
        description="Print the config without its tui_merge: block, comments kept, for mergekit.",
        epilog="examples:\n  tui-merge export --mergekit merge.yaml > mergekit.yaml\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("config", metavar="CONFIG", help="the merge config")
    export.add_argument("--mergekit", action="store_true", required=True, help="mergekit's dialect (the only one)")
    export.set_defaults(handler="tui_merge.cli.export_cmd:run")

    wizard = commands.add_parser(
        "wizard",
        help="the full-screen wizard (also: tui-merge with no command)",
        description="Open the keyboard-only wizard, with models preloaded or a saved config reopened.",
        epilog="examples:\n  tui-merge wizard ./base ./chat\n  tui-merge wizard --config merge.yaml\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wizard.add_argument("models", nargs="*", metavar="MODEL", help="models to preload")
    wizard.add_argument("--config", metavar="FILE", help="reopen a saved config to edit it")
    wizard.set_defaults(handler="tui_merge.cli.wizard_cmd:run")

    verify = commands.add_parser(
        "verify",
        help="check a merged model folder",
        description=textwrap.dedent(
            """\
            Check a merged model folder: every header and the index, every tensor
            finite, config.json against the weights (layers, vocabulary, tokenizer
            ids), tensors against the saved recipe when its inputs are at hand, and
            the architecture's expected tensors (built on the meta device: no weights
            are loaded). Streams one tensor at a time. --probe also compares the
            perplexity of the merge and its parents on a built-in text, loading each
            model in turn."""
        ),
        epilog=_VERIFY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("folder", metavar="OUT", help="the merged model folder")
    verify.add_argument("--probe", action="store_true", help="also compare perplexity with the parents")
    verify.add_argument("--json", action="store_true", help="print the checks as JSON")
    verify.set_defaults(handler="tui_merge.cli.verify_cmd:run")

    demo = commands.add_parser(
        "demo",
        help="tiny sample models (no download), opened in the wizard",
        description=textwrap.dedent(
            """\
            Build tiny sample models (a llama-shaped base, a fine-tune of it and an
            unrelated model, with a tokenizer) in a cache folder, once, and open the
            wizard on the first two. Without a terminal, print their inspection."""
        ),
        epilog=_DEMO_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--dir", metavar="FOLDER", help="where to keep the sample models (default: ~/.cache/tui-merge/demo)"
    )
    demo.add_argument("--rebuild", action="store_true", help="build the sample models again")
    demo.add_argument("--no-wizard", action="store_true", help="print the inspection instead of opening the wizard")
    demo.set_defaults(handler="tui_merge.cli.demo_cmd:run")
    return parser
