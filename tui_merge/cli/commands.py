"""The command table: each command's name, the handler that runs it (``module:function``, imported only when it
runs, so ``--help`` never pays for torch), its texts and its arguments. Adding a command is adding a row."""

from __future__ import annotations

import argparse

from tui_merge.cli.command_spec import Command, OneOf, arg
from tui_merge.cli.command_spec import paragraph as _paragraph
from tui_merge.cli.help_texts import (
    BAKLLAMA_EXAMPLES,
    BLOCKMERGE_EXAMPLES,
    CIRCUIT_EXAMPLES,
    COMPARE_EXAMPLES,
    DEMO_EXAMPLES,
    DOCTOR_EXAMPLES,
    IMPORT_EXAMPLES,
    INSPECT_EXAMPLES,
    LEGACY_EXAMPLES,
    RUN_EXAMPLES,
    SEARCH_EXAMPLES,
    SWEEP_EXAMPLES,
    TEMPLATE_EXAMPLES,
    VERIFY_EXAMPLES,
)
from tui_merge.cli.tool_commands import TOOL_COMMANDS

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
        INSPECT_EXAMPLES,
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
        RUN_EXAMPLES,
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
            arg("--stage", metavar="NAME",
                help="a multi-stage recipe: run stage NAME and the stages it needs, nothing after it"),
            arg("-I", "--intermediate-dir", metavar="DIR",
                help="a multi-stage recipe: where the stages before the final one go (default OUT.stages)"),
            arg("--lazy", action=argparse.BooleanOptionalAction, default=True,
                help="a multi-stage recipe: keep a stage whose folder holds its merge (default on)"),
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
        TEMPLATE_EXAMPLES,
        (
            arg("models", nargs="+", metavar="MODEL", help="model folder or hub id"),
            arg("--method", default="linear", help="merge method (default: linear)"),
            arg("--base", metavar="MODEL", help="the base model (default: the first, for methods that use one)"),
            arg("-o", "--output", required=True, metavar="FILE", help="where to write the config"),
            arg("--force", action="store_true", help="overwrite FILE if it exists"),
            arg("--stage", metavar="NAME",
                help="write it as stage NAME of a multi-stage recipe (added to FILE when it exists)"),
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
        VERIFY_EXAMPLES,
        (
            arg("folder", metavar="OUT", help="the merged model folder"),
            arg("--probe", action="store_true", help="also compare perplexity with the parents"),
            arg("--json", action="store_true", help="print the checks as JSON"),
        ),
    ),
    Command(
        "doctor", "tui_merge.cli.doctor_cmd:run", "check Python, torch and CUDA, the packages, the cache and terminal",
        _paragraph("""\
            What to know before an hour-long merge: Python and each package against the
            range tui-merge supports, whether torch sees CUDA (devices, memory), the
            Hugging Face cache and its free disk, whether a Hub token is present (never
            shown), HF_HUB_OFFLINE, and whether the wizard can draw in this terminal.
            Exit status 0 when all is within range, 1 with one line per problem."""),
        DOCTOR_EXAMPLES,
        (arg("--json", action="store_true", help="print the facts as JSON"),),
    ),
    Command(
        "demo", "tui_merge.cli.demo_cmd:run", "tiny sample models (no download), opened in the wizard",
        _paragraph("""\
            Build tiny sample models (a llama-shaped base, a fine-tune of it and an
            unrelated model, with a tokenizer) in a cache folder, once, and open the
            wizard on the first two. Without a terminal, print their inspection."""),
        DEMO_EXAMPLES,
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
        BLOCKMERGE_EXAMPLES,
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
        CIRCUIT_EXAMPLES,
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
        COMPARE_EXAMPLES,
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
        SWEEP_EXAMPLES,
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
        "search", "tui_merge.cli.search_cmd:run", "search a recipe's parameters for the best merge (Optuna; Ray)",
        "Search a recipe's parameters: each trial merges, is scored by the objectives\n"
        "and kept in a study file that resumes; a live table marks the best so far.",
        SEARCH_EXAMPLES,
        (
            arg("config", metavar="RECIPE", help="the merge recipe to search"),
            arg("--space", action="append", metavar="NAME=SPEC", help="a parameter and where to search it (repeat)"),
            arg("--objective", action="append", metavar="OBJ",
                help="perplexity[:FILE] or command:COMMAND, min: or max: in front (repeat; default perplexity)"),
            arg("--trials", type=int, metavar="N", help="finished trials the study holds at the end (default 20)"),
            arg("--sampler", default="tpe", choices=["tpe", "cmaes", "random", "grid"], help="how to pick values"),
            arg("--seed", type=int, default=0, metavar="N", help="the sampler's seed (default 0)"),
            arg("--workers", type=int, metavar="N", help="trials at once (default: what cores, disk and memory allow)"),
            arg("--study", metavar="FILE", help="the study's SQLite file (default RECIPE.search.db beside it)"),
            arg("--keep-best", type=int, default=0, metavar="K", help="keep the merged folders of the K best"),
            arg("--grid-steps", type=int, default=5, metavar="N", help="points per range for --sampler grid"),
            arg("--ray", metavar="ADDRESS", help="run trials on the Ray cluster at ADDRESS (tui-merge[ray])"),
            arg("-o", "--output", metavar="FILE", help="write the best trial's recipe here"),
            arg("--device", default="auto", metavar="D", help="where perplexity is computed: auto, cpu, cuda:N"),
        ),
    ),
    Command(
        "legacy", "tui_merge.cli.legacy_cmd:run",
        "mergekit 0.0.2's mergekit-legacy command line: --merge models with weights and densities",
        "Merge with mergekit-legacy's flags (mergekit 0.0.2); they become a config\n"
        "that --print-yaml shows and tui-merge run replays.",
        LEGACY_EXAMPLES,
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
        BAKLLAMA_EXAMPLES,
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
        IMPORT_EXAMPLES,
        (
            arg("card", metavar="MODEL_CARD.md", help="the model card (README.md of a merged model)"),
            arg("-o", "--output", metavar="FILE", help="where to write the config (default: print it)"),
            arg("--force", action="store_true", help="overwrite FILE if it exists"),
            arg("--print-yaml", action="store_true", help="print the config instead of writing FILE"),
        ),
    ),
    *TOOL_COMMANDS,
)  # fmt: skip
