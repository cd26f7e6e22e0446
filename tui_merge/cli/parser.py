"""The argument parser: every command, its options and the examples its --help shows.

The commands are a table (``COMMANDS``): a name, the handler that runs it
(``module:function``, imported only when it runs, so ``--help`` never pays
for torch), its texts and its arguments. ``build_parser`` reads the table;
adding a command is adding a row.
"""

from __future__ import annotations

import argparse
import importlib
import textwrap
from dataclasses import dataclass, field
from typing import Any

from tui_merge import __version__

_DESCRIPTION = """\
Merge the weights of fine-tuned language models: see whether models can be
merged before spending an hour on it, merge them from a keyboard-only wizard or
a replayable config, and verify the result. Models are local folders or hub ids
(org/name): one the local Hugging Face cache lacks is inspected from the Hub
without its weights, which come only with run --download."""

_EXAMPLES = """\
examples:
  tui-merge                               the wizard (plain when TERM is dumb)
  tui-merge plain ./base ./chat           the wizard as prompts, one at a time
  tui-merge demo                          the wizard on tiny sample models
  tui-merge inspect ./base ./chat         can these two be merged?
  tui-merge template ./base ./chat --method slerp -o merge.yaml
  tui-merge run merge.yaml ./merged       merge headlessly from a config
  tui-merge verify ./merged               is the merged folder sound?
  tui-merge methods ties                  what ties does and its parameters
  tui-merge import-recipe README.md -o m.yaml  a model card's mergekit recipe
  tui-merge circuit ./base ./best ./second ./out   Circuit-Merge's arguments
  tui-merge blockmerge --model_path1 ./a --model_path2 ./b \\
      --output_model_path ./out --gradient_values '[1, 0.5, 0]'
  tui-merge legacy ./out --merge ./a --merge ./b --base-model ./base
  tui-merge bakllama layers.yaml ./out     a bakllama layer-stacking config
"""

_RUN_EXAMPLES = """\
examples:
  tui-merge run merge.yaml ./merged       merge (mergekit's argument order)
  tui-merge run merge.yaml -o ./merged    the same
  tui-merge run merge.yaml --dry-run      validate, show the plan, write nothing
  nohup tui-merge run merge.yaml ./merged > merge.log 2>&1 &
  tui-merge run merge.yaml ./merged --resume
      continue after Ctrl-C, kill or a lost SSH session
  tui-merge run merge.yaml ./merged --download
      fetch from the Hub only the weight files the merge reads

Hub ids the cache lacks are planned from the Hub's metadata and headers; the
weights are fetched only with --download (into the Hugging Face cache, checked
against the Hub's sha256). HF_HUB_OFFLINE=1 keeps every lookup in the cache.
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
  tui-merge template ./base ./chat ./code --method ties --base ./base \\
      -o ties.yaml
"""

_INSPECT_EXAMPLES = """\
examples:
  tui-merge inspect ./mistral-base ./mistral-chat ./mistral-code
  tui-merge inspect org/model-a org/model-b --base org/model-b
  tui-merge inspect ./a ./b --json > report.json
  tui-merge inspect --layers ./base ./chat ./code   what each fine-tune changed

exit status: 0 mergeable, 1 an error-level finding, 2 bad input (missing
folder, damaged weights, unreadable config).
"""

_VERIFY_EXAMPLES = """\
examples:
  tui-merge verify ./merged           structural checks, one tensor at a time
  tui-merge verify ./merged --probe   and perplexity beside the parents'
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

_COMPARE_EXAMPLES = """\
examples:
  tui-merge compare ./merged ./base ./chat     perplexity on the built-in text
  tui-merge compare ./merged ./chat --text notes.txt \\
      --prompt "The capital of France is"
  tui-merge compare ./merged ./base --json > scores.json

Perplexity is exp of the mean next-token loss, as transformers computes it
with labels = input_ids on each model's own tokenizer; a text longer than a
model's context is scored in consecutive windows of that length. The
built-in text is public domain (the opening of the Declaration of
Independence and the Gettysburg Address). Models load one at a time, on
CUDA when torch sees a GPU, else the CPU; models without a language-model
head are skipped, and said so.
"""

_SWEEP_EXAMPLES = """\
examples:
  tui-merge sweep merge.yaml --vary t=0.2,0.5,0.8 -o best.yaml
  tui-merge sweep ties.yaml --vary models[0].density=0.3,0.5,0.7 \\
      --vary lambda=0.8,1
  tui-merge sweep slerp.yaml --vary "t=[0,0.5,1],[1,0.5,0],0.5" \\
      --text notes.txt --keep

NAME is a global parameter (t), parameters.NAME, or models[I].NAME; values
are YAML, so a value may be a gradient. Every candidate is validated before
the first merge; each is merged into CONFIG.sweep/ID/candidate-N (removed
once scored, unless --keep; ID names this config, --vary and text) and
scored like tui-merge compare. An interrupted sweep run again continues
where it stopped.
"""

_LEGACY_EXAMPLES = """\
examples:
  tui-merge legacy ./merged --merge ./chat --merge ./code --base-model ./base \\
      --density 0.5 --weight 0.6 --weight 0.4
  tui-merge legacy ./merged --method slerp --merge ./a --base-model ./b \\
      --weight 0.3
  tui-merge legacy ./merged --merge ./a --merge ./b --method linear \\
      --print-yaml > merge.yaml

mergekit-legacy's rules: one --weight or --density applies to every model,
several give one per model (--merge order, then a base model that is not
merged); for slerp the single --weight is t; --naive-count elects signs by
count; bfloat16 unless --no-bf16; the CPU unless --cuda.
"""

_BAKLLAMA_EXAMPLES = """\
examples:
  tui-merge bakllama layers.yaml ./merged
  tui-merge bakllama layers.yaml --print-yaml > merge.yaml

layers.yaml, as bakllama reads it:
  layer_slices:
    - {model: ./base, start: 0, end: 16}
    - {model: ./chat, start: 8, end: 24, scale: 0.9}
  embedding_source: ./base     (default: the first slice's model)
  lm_head_source: ./chat       (default: the last slice's model)
Ranges are half-open; scale multiplies that slice's MLP down-projections.
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
  tui-merge demo                    build the sample models once, open them
  tui-merge demo --dir /tmp/demo    keep the sample models somewhere else
"""


@dataclass(frozen=True)
class Arg:
    """One ``add_argument`` call: its flags or name, and its keywords."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """An argument of a command, spelled as for ``add_argument``."""
    return Arg(flags, options)


@dataclass(frozen=True)
class OneOf:
    """Arguments of which at most one may be given."""

    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Command:
    """One subcommand."""

    name: str
    handler: str
    """``module:function`` that runs it."""
    help: str
    """The line in ``tui-merge --help``."""
    description: str
    epilog: str
    args: tuple[Arg | OneOf, ...] = field(default_factory=tuple)
    more: str | None = None
    """``module:function`` that adds arguments of its own to the command's parser (a group of another tool's
    options), imported only when the parser is built."""


def _paragraph(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


_GENERATED = (
    arg("--print-yaml", action="store_true", help="print the equivalent config and stop"),
    arg(
        "--force",
        action="store_true",
        help="replace an earlier merge (or an empty folder) at OUT once the merge succeeded",
    ),
    arg("--resume", action="store_true", help="continue an interrupted merge of the same command"),
    arg(
        "--allow-crimes",
        action="store_true",
        help="merge models of different architectures or lineages anyway (mergekit's flag)",
    ),
)
"""What every command that builds its own config takes."""

COMMANDS: tuple[Command, ...] = (
    Command(
        "inspect", "tui_merge.cli.inspect_cmd:run", "show models side by side and every finding about merging them",
        _paragraph("""\
            Show the models side by side (architecture, depth, width, heads, vocabulary,
            dtype, size) and every finding about merging them: errors that block a merge,
            warnings with the fixes that apply, and a lineage check that reads one small
            tensor of each model to tell fine-tunes of one base from unrelated models.
            Reads headers only; takes seconds even for 70B models. --layers reads every
            weight once (as fast as a merge, nothing written, the figures cached) to show
            what each fine-tune changed per layer and component, and where fine-tunes agree."""),
        _INSPECT_EXAMPLES,
        (
            arg("models", nargs="+", metavar="MODEL",
                help="model folder or hub id (org/name[@rev]); one the cache lacks is read from the Hub, its "
                     "weights by range only"),
            arg("--base", metavar="MODEL", help="the model the others are compared with (default: the first one)"),
            arg("--method", metavar="NAME",
                help="the merge method you plan to use; passthrough accepts models of different depth"),
            arg("--json", action="store_true", help="print the table and findings as JSON"),
            arg("--layers", action="store_true",
                help="also measure each model's relative change from the base and the cosine between the "
                     "models' task vectors, per layer and component (reads every weight once)"),
        ),
    ),
    Command(
        "run", "tui_merge.cli.run_cmd:run", "merge models from a config file, headlessly",
        "Validate a merge config, plan every output tensor, and merge with progress.",
        _RUN_EXAMPLES,
        (
            arg("config", metavar="CONFIG", help="the merge config (YAML)"),
            arg("output", metavar="OUT", nargs="?", help="output folder"),
            arg("-o", "--output", dest="output_option", metavar="OUT", help="output folder"),
            arg("--dry-run", action="store_true", help="validate and print the plan; write nothing"),
            arg("--force", action="store_true",
                help="replace an earlier merge (or an empty folder) at OUT after success"),
            arg("--resume", action="store_true",
                help="continue an interrupted merge from OUT.partial (same config and inputs)"),
            arg("--allow-nonfinite", action="store_true",
                help="merge inputs that hold NaN or Inf (the result is still checked)"),
            arg("--verify", action="store_true", help="run tui-merge verify on OUT once the merge is done"),
            arg("--allow-crimes", action="store_true",
                help="merge models of different architectures or lineages anyway (mergekit's flag); the "
                     "finding is printed as a warning and kept in the model card"),
            arg("--download", action="store_true",
                help="download from the Hub the weight files the merge reads that the cache lacks (only those; "
                     "sha256-checked), after every check has passed"),
        ),
        more="tui_merge.cli.mergekit_flags:add_mergekit_flags",
    ),
    Command(
        "methods", "tui_merge.cli.methods_cmd:run", "list the merge methods, or describe one",
        "List the merge methods with what they do, or show one method's parameters\nand defaults.",
        "examples:\n  tui-merge methods\n  tui-merge methods ties\n",
        (arg("name", nargs="?", metavar="NAME", help="a method to describe"),),
    ),
    Command(
        "template", "tui_merge.cli.template_cmd:run",
        "write a commented config with every layer's value, to edit and run",
        _paragraph("""\
            Write a commented merge config for these models: every layer's value on its
            own line, explicit rows for embeddings, final norm and head. Edit it in any
            text editor and replay it with tui-merge run."""),
        _TEMPLATE_EXAMPLES,
        (
            arg("models", nargs="+", metavar="MODEL", help="model folder or hub id"),
            arg("--method", default="linear", help="merge method (default: linear)"),
            arg("--base", metavar="MODEL", help="the base model (default: the first, for methods that use one)"),
            arg("-o", "--output", required=True, metavar="FILE", help="where to write the config"),
            arg("--force", action="store_true", help="overwrite FILE if it exists"),
        ),
    ),
    Command(
        "export", "tui_merge.cli.export_cmd:run", "print a config as a plain mergekit recipe",
        "Print the config without its tui_merge: block, comments kept, for mergekit.",
        "examples:\n  tui-merge export merge.yaml > mergekit.yaml\n  tui-merge export --mergekit merge.yaml\n",
        (
            arg("config", metavar="CONFIG", help="the merge config"),
            arg("--mergekit", action="store_true",
                help="mergekit's dialect: the only one, so also what export writes without it"),
        ),
    ),
    Command(
        "wizard", "tui_merge.cli.wizard_cmd:run", "the full-screen wizard (also: tui-merge with no command)",
        "Open the keyboard-only wizard, with models preloaded or a saved config reopened.",
        "examples:\n  tui-merge wizard ./base ./chat\n  tui-merge wizard --config merge.yaml\n",
        (
            arg("models", nargs="*", metavar="MODEL", help="models to preload"),
            arg("--config", metavar="FILE", help="reopen a saved config to edit it"),
        ),
    ),
    Command(
        "verify", "tui_merge.cli.verify_cmd:run", "check a merged model folder",
        _paragraph("""\
            Check a merged model folder: every header and the index, every tensor
            finite, config.json against the weights (layers, vocabulary, tokenizer
            ids), tensors against the saved recipe when its inputs are at hand, and
            the architecture's expected tensors (built on the meta device: no weights
            are loaded). Streams one tensor at a time. --probe also compares the
            perplexity of the merge and its parents on a built-in text, loading each
            model in turn."""),
        _VERIFY_EXAMPLES,
        (
            arg("folder", metavar="OUT", help="the merged model folder"),
            arg("--probe", action="store_true", help="also compare perplexity with the parents"),
            arg("--json", action="store_true", help="print the checks as JSON"),
        ),
    ),
    Command(
        "demo", "tui_merge.cli.demo_cmd:run", "tiny sample models (no download), opened in the wizard",
        _paragraph("""\
            Build tiny sample models (a llama-shaped base, a fine-tune of it and an
            unrelated model, with a tokenizer) in a cache folder, once, and open the
            wizard on the first two. Without a terminal, print their inspection."""),
        _DEMO_EXAMPLES,
        (
            arg("--dir", metavar="FOLDER",
                help="where to keep the sample models (default: demo in $TUI_MERGE_CACHE, else ~/.cache/tui-merge)"),
            arg("--rebuild", action="store_true", help="build the sample models again"),
            arg("--no-wizard", action="store_true", help="print the inspection instead of opening the wizard"),
        ),
    ),
    Command(
        "plain", "tui_merge.cli.plain_cmd:run",
        "the wizard as a sequence of prompts, for dumb terminals and screen readers",
        _paragraph("""\
            The wizard's steps asked one question at a time: models, findings, method,
            parameters (a per-layer value as a number or a list spread over the layers),
            output options, review, then the merge with progress lines. On a capable
            terminal the questions are questionary prompts; on TERM=dumb, through a
            screen reader or with answers piped on stdin they are numbered lines. The
            config is saved before the merge and replays with tui-merge run. tui-merge
            with no command opens this instead of the full-screen wizard when TERM is
            dumb or unknown."""),
        "examples:\n  tui-merge plain\n  tui-merge plain ./base ./chat\n  TERM=dumb tui-merge plain ./a ./b\n"
        "  printf './a\\n./b\\n\\n...' | tui-merge plain      answers on stdin, one per line\n"
        "  tui-merge plain ./a ./b --print-yaml > m.yaml   (questions on stderr)\n",
        (
            arg("models", nargs="*", metavar="MODEL", help="models to start with"),
            arg("--config", metavar="FILE", help="start from a saved config"),
            arg("--print-yaml", action="store_true", help="print the config on stdout instead of saving and merging"),
        ),
    ),
    Command(
        "blockmerge", "tui_merge.cli.blockmerge_cmd:run",
        "the BlockMerge Gradient script's flags: blend two models along a gradient over the layers",
        "Blend two models with a per-layer ratio given as a gradient, with the\n"
        "flags of BlockMerge Gradient; runs as a linear merge config.",
        _BLOCKMERGE_EXAMPLES,
        (
            arg("--model_path1", required=True, metavar="MODEL", help="model 1 (share 0.0)"),
            arg("--model_path2", required=True, metavar="MODEL", help="model 2 (share 1.0)"),
            arg("--output_model_path", metavar="OUT", help="output folder"),
            arg("--gradient_values", required=True, metavar="LIST",
                help="model 2's shares along the depth, e.g. '[1.0, 0.5, 0.0]'"),
            arg("--max_shard_size", default="5GB", metavar="SIZE", help="largest output shard (default 5GB)"),
            OneOf((
                arg("--layer_only", action="store_true", help="blend only the layers; the rest from model 1"),
                arg("--no_layers", action="store_true", help="blend only outside the layers; layers from model 1"),
            )),
            *_GENERATED,
        ),
    ),
    Command(
        "circuit", "tui_merge.cli.circuit_cmd:run",
        "Circuit-Merge's command line: priority-ordered DELLA of variants onto a base",
        "Merge variants of a base model with the circuit method, with Circuit-Merge's\n"
        "arguments and config file; variants in priority order, highest first.",
        _CIRCUIT_EXAMPLES,
        (
            arg("models", nargs="*", metavar="MODEL", help="BASE VARIANT [VARIANT...] OUT"),
            arg("--config", metavar="FILE", help="a Circuit-Merge YAML config"),
            arg("--temperature", type=float, metavar="T", help="0: agreeing models halve; 1: plain average"),
            arg("--base_droprate", type=float, metavar="P", help="drop rate of the highest priority"),
            arg("--meaningful_change_threshold", type=float, metavar="E", help="smaller changes count as none"),
            arg("--epsilon", type=float, metavar="E", help="spread of drop rates by magnitude"),
            arg("--seed", type=int, metavar="S", help="seed of the random drops"),
            arg("--skip_rescaling", action="store_true", default=None, help="keep pruned deltas unscaled"),
            arg("--test", action="store_true", help="run a self-check of the method on synthetic tensors"),
            *_GENERATED,
        ),
    ),
    Command(
        "compare", "tui_merge.cli.compare_cmd:run", "perplexity and greedy continuations of models, side by side",
        "Is the merge any good? Score models on a text (perplexity) and continue\n"
        "prompts greedily, one model in memory at a time.",
        _COMPARE_EXAMPLES,
        (
            arg("models", nargs="+", metavar="MODEL", help="model folders or cached hub ids"),
            arg("--text", metavar="FILE", help="the text to score (default: a built-in public-domain sample)"),
            arg("--prompt", action="append", metavar="TEXT", help="a prompt to continue (repeat for more)"),
            arg("--max-new-tokens", type=int, default=32, metavar="N", help="tokens per continuation (default 32)"),
            arg("--device", default="auto", metavar="D", help="auto (CUDA when present), cpu, cuda or cuda:N"),
            arg("--json", action="store_true", help="print the scores as JSON"),
        ),
    ),
    Command(
        "sweep", "tui_merge.cli.sweep_cmd:run", "merge one candidate per combination of values and rank them",
        "Which ratio is best? Merge one candidate per combination of --vary values,\n"
        "score each by perplexity and rank them; -o writes the best one's config.",
        _SWEEP_EXAMPLES,
        (
            arg("config", metavar="CONFIG", help="the merge config to vary"),
            arg("--vary", action="append", metavar="NAME=V1,V2,...", help="a parameter and its values (repeat)"),
            arg("--text", metavar="FILE", help="the text to score (default: the built-in sample)"),
            arg("-o", "--output", metavar="FILE", help="write the best candidate's config here"),
            arg("--keep", action="store_true", help="keep every candidate's merged folder"),
            arg("--dir", metavar="FOLDER", help="where sweep folders go (default: CONFIG.sweep beside the config)"),
            arg("--device", default="auto", metavar="D", help="where to score: auto, cpu, cuda or cuda:N"),
        ),
    ),
    Command(
        "legacy", "tui_merge.cli.legacy_cmd:run",
        "mergekit 0.0.2's mergekit-legacy command line: --merge models with weights and densities",
        "Merge with mergekit-legacy's flags (mergekit 0.0.2); they become a config\n"
        "that --print-yaml shows and tui-merge run replays.",
        _LEGACY_EXAMPLES,
        (
            arg("output", nargs="?", metavar="OUT", help="output folder"),
            arg("--merge", action="append", required=True, metavar="MODEL", help="a model to merge (repeat)"),
            arg("--base-model", metavar="MODEL", help="the base model"),
            arg("--weight", action="append", type=float, default=[], metavar="W",
                help="one for every model, or one per model (slerp: its t)"),
            arg("--density", action="append", type=float, default=[], metavar="D",
                help="one for every model, or one per model"),
            arg("--method", default="ties", metavar="NAME", help="merge method (default ties)"),
            arg("--normalize", action=argparse.BooleanOptionalAction, default=True,
                help="divide by the sum of the weights (default on)"),
            arg("--int8-mask", action="store_true", help="accepted; masks are always exact here"),
            arg("--bf16", action=argparse.BooleanOptionalAction, default=True, help="write bfloat16 (default on)"),
            arg("--naive-count", action="store_true", help="elect signs by count, not by sum (ties)"),
            arg("--cuda", action="store_true", help="merge on the GPU (default: the CPU)"),
            arg("--copy-tokenizer", action=argparse.BooleanOptionalAction, default=True,
                help="copy the base model's tokenizer (default on)"),
            *_GENERATED,
        ),
    ),
    Command(
        "bakllama", "tui_merge.cli.bakllama_cmd:run",
        "bakllama's layer-recombination config: stack layer ranges of models",
        "Stack layers with a bakllama config (layer_slices, embedding_source,\n"
        "lm_head_source); it becomes a passthrough config.",
        _BAKLLAMA_EXAMPLES,
        (
            arg("config", metavar="CONFIG", help="the bakllama YAML file"),
            arg("output", nargs="?", metavar="OUT", help="output folder"),
            arg("--fp16", action="store_true", help="write float16"),
            *_GENERATED,
        ),
    ),
    Command(
        "import-recipe", "tui_merge.cli.import_cmd:run", "extract the mergekit recipe from a model card into a config",
        "Extract the mergekit YAML recipe of a model card (its fenced yaml block)\n"
        "into a config file and say which of its models are in the local cache.",
        _IMPORT_EXAMPLES,
        (
            arg("card", metavar="MODEL_CARD.md", help="the model card (README.md of a merged model)"),
            arg("-o", "--output", metavar="FILE", help="where to write the config (default: print it)"),
            arg("--force", action="store_true", help="overwrite FILE if it exists"),
            arg("--print-yaml", action="store_true", help="print the config instead of writing FILE"),
        ),
    ),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``tui-merge`` parser with every command of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="tui-merge",
        description=_DESCRIPTION,
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tui-merge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=command.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for item in command.args:
            if isinstance(item, OneOf):
                group = sub.add_mutually_exclusive_group()
                for one in item.args:
                    group.add_argument(*one.flags, **one.options)
            else:
                sub.add_argument(*item.flags, **item.options)
        if command.more:
            module, _, function = command.more.partition(":")
            getattr(importlib.import_module(module), function)(sub)
        sub.set_defaults(handler=command.handler)
    return parser
