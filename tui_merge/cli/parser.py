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
  tui-merge                               open the wizard (the plain one when TERM is dumb)
  tui-merge plain ./base ./chat           the wizard as prompts, one question at a time
  tui-merge demo                          the wizard on tiny sample models, no download
  tui-merge inspect ./base ./chat         can these two be merged?
  tui-merge template ./base ./chat --method slerp -o merge.yaml
  tui-merge run merge.yaml ./merged       merge headlessly from a config
  tui-merge verify ./merged               is the merged folder sound?
  tui-merge methods ties                  what ties does and its parameters
  tui-merge import-recipe README.md -o m.yaml  a model card's mergekit recipe
  tui-merge circuit ./base ./best ./second ./out   Circuit-Merge's arguments
  tui-merge blockmerge --model_path1 ./a --model_path2 ./b \\
      --output_model_path ./out --gradient_values '[1, 0.5, 0]'
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
_BLOCKMERGE_EXAMPLES = """\
examples:
  tui-merge blockmerge --model_path1 ./base --model_path2 ./chat \\
      --output_model_path ./merged --gradient_values '[1.0, 0.5, 0.0]' \\
      --max_shard_size 2000MiB
  tui-merge blockmerge --model_path1 ./a --model_path2 ./b \\
      --gradient_values '[0.3]' --print-yaml > merge.yaml

A gradient value is model 2's share: 1.0 is all of model 2, 0.0 all of model 1.
The values are spread evenly over the layers, first to last, and each layer
takes the linear interpolation at its depth (the original script interpolated
over the position in its tensor list; here every tensor of a layer, attention
and MLP alike, gets the layer's ratio). Embeddings take the first value, the
final norm and head the last. The output keeps model 1's vocabulary (model 2's
rows cut or padded with its mean row, with a warning) and tokenizer. The config
it runs is saved in the output as tui_merge_config.yaml; --print-yaml prints it.
exit status: 0 merged, 1 the merge failed, 2 bad input, 130 interrupted.
"""

_CIRCUIT_EXAMPLES = """\
examples:
  tui-merge circuit ./base ./best-variant ./second-variant ./merged
  tui-merge circuit ./base ./a ./b ./merged --temperature 0.5 --seed 7
  tui-merge circuit --config circuit.yaml
  tui-merge circuit --config circuit.yaml --print-yaml > merge.yaml
  tui-merge circuit --test      self-check of the method on synthetic tensors

Variants are listed in priority order, highest first: a higher-priority
variant wins sign conflicts and is pruned least. A --config file may hold:
  base_model: ./base
  variant_models: [./best-variant, ./second-variant]
  output_dir: ./merged
  parameters: {temperature: 0.0, base_droprate: 0.5, epsilon: 0.1,
               meaningful_change_threshold: 2.0e-6, skip_rescaling: false,
               seed: 0}
Flags and positional models given on the command line override the file.
exit status: 0 merged (or --test passed), 1 the merge or a self-check
failed, 2 bad input, 130 interrupted.
"""

_IMPORT_EXAMPLES = """\
examples:
  tui-merge import-recipe ./some-merge/README.md -o merge.yaml
  tui-merge import-recipe card.md -o m.yaml && tui-merge run m.yaml ./merged
  tui-merge import-recipe card.md --print-yaml   (report on stderr)

The recipe is the first fenced yaml block of the card that has merge_method.
Its model ids stay as they are (hub ids resolve against the local Hugging Face
cache when the merge runs); each is looked up now and the missing ones are
listed with the command that downloads them.
exit status: 0 written and every model is here, 1 written but models are
missing, 2 bad input (no recipe in the card, an invalid recipe, FILE exists).
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

    plain = commands.add_parser(
        "plain",
        help="the wizard as a sequence of prompts, for dumb terminals and screen readers",
        description=textwrap.dedent(
            """\
            The wizard's steps asked one question at a time: models, findings, method,
            parameters (a per-layer value as a number or a list spread over the layers),
            output options, review, then the merge with progress lines. On a capable
            terminal the questions are questionary prompts; on TERM=dumb, through a
            screen reader or with answers piped on stdin they are numbered lines. The
            config is saved before the merge and replays with tui-merge run. tui-merge
            with no command opens this instead of the full-screen wizard when TERM is
            dumb or unknown."""
        ),
        epilog="examples:\n  tui-merge plain\n  tui-merge plain ./base ./chat\n  TERM=dumb tui-merge plain ./a ./b\n"
        "  printf './a\\n./b\\n\\n...' | tui-merge plain      answers on stdin, one per line\n"
        "  tui-merge plain ./a ./b --print-yaml > m.yaml   (questions on stderr)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plain.add_argument("models", nargs="*", metavar="MODEL", help="models to start with")
    plain.add_argument("--config", metavar="FILE", help="start from a saved config")
    plain.add_argument(
        "--print-yaml", action="store_true", help="print the config on stdout instead of saving and merging"
    )
    plain.set_defaults(handler="tui_merge.cli.plain_cmd:run")

    blockmerge = commands.add_parser(
        "blockmerge",
        help="the BlockMerge Gradient script's flags: blend two models along a gradient over the layers",
        description="Blend two models with a per-layer ratio given as a gradient, with the\n"
        "flags of BlockMerge Gradient; runs as a linear merge config.",
        epilog=_BLOCKMERGE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    blockmerge.add_argument("--model_path1", required=True, metavar="MODEL", help="model 1 (share 0.0)")
    blockmerge.add_argument("--model_path2", required=True, metavar="MODEL", help="model 2 (share 1.0)")
    blockmerge.add_argument("--output_model_path", metavar="OUT", help="output folder")
    blockmerge.add_argument(
        "--gradient_values",
        required=True,
        metavar="LIST",
        help="model 2's shares along the depth, e.g. '[1.0, 0.5, 0.0]'",
    )
    blockmerge.add_argument(
        "--max_shard_size", default="5GB", metavar="SIZE", help="largest output shard (default 5GB)"
    )
    only = blockmerge.add_mutually_exclusive_group()
    only.add_argument("--layer_only", action="store_true", help="blend only the layers; the rest from model 1")
    only.add_argument("--no_layers", action="store_true", help="blend only outside the layers; layers from model 1")
    _generated_options(blockmerge)
    blockmerge.set_defaults(handler="tui_merge.cli.blockmerge_cmd:run")

    circuit = commands.add_parser(
        "circuit",
        help="Circuit-Merge's command line: priority-ordered DELLA of variants onto a base",
        description="Merge variants of a base model with the circuit method, with Circuit-Merge's\n"
        "arguments and config file; variants in priority order, highest first.",
        epilog=_CIRCUIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    circuit.add_argument("models", nargs="*", metavar="MODEL", help="BASE VARIANT [VARIANT...] OUT")
    circuit.add_argument("--config", metavar="FILE", help="a Circuit-Merge YAML config")
    circuit.add_argument("--temperature", type=float, metavar="T", help="0: agreeing models halve; 1: plain average")
    circuit.add_argument("--base_droprate", type=float, metavar="P", help="drop rate of the highest priority")
    circuit.add_argument("--meaningful_change_threshold", type=float, metavar="E", help="smaller changes count as none")
    circuit.add_argument("--epsilon", type=float, metavar="E", help="spread of drop rates by magnitude")
    circuit.add_argument("--seed", type=int, metavar="S", help="seed of the random drops")
    circuit.add_argument("--skip_rescaling", action="store_true", default=None, help="keep pruned deltas unscaled")
    circuit.add_argument("--test", action="store_true", help="run a self-check of the method on synthetic tensors")
    _generated_options(circuit)
    circuit.set_defaults(handler="tui_merge.cli.circuit_cmd:run")

    importer = commands.add_parser(
        "import-recipe",
        help="extract the mergekit recipe from a model card into a config",
        description="Extract the mergekit YAML recipe of a model card (its fenced yaml block)\n"
        "into a config file and say which of its models are in the local cache.",
        epilog=_IMPORT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    importer.add_argument("card", metavar="MODEL_CARD.md", help="the model card (README.md of a merged model)")
    importer.add_argument("-o", "--output", metavar="FILE", help="where to write the config (default: print it)")
    importer.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    importer.add_argument("--print-yaml", action="store_true", help="print the config instead of writing FILE")
    importer.set_defaults(handler="tui_merge.cli.import_cmd:run")
    return parser


def _generated_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--print-yaml", action="store_true", help="print the equivalent config and stop")
    command.add_argument("--force", action="store_true", help="replace an existing output once the merge succeeded")
    command.add_argument("--resume", action="store_true", help="continue an interrupted merge of the same command")
