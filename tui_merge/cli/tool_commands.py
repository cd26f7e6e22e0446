"""The command table's rows for mergekit's other tools: extracting a LoRA adapter, building a mixture of experts."""

from __future__ import annotations

import argparse

from tui_merge.cli.command_spec import Command, arg
from tui_merge.cli.command_spec import paragraph as _paragraph
from tui_merge.cli.help_texts import EXTRACT_LORA_EXAMPLES, MOE_EXAMPLES

TOOL_COMMANDS: tuple[Command, ...] = (
    Command(
        "extract-lora", "tui_merge.cli.extract_lora_cmd:run",
        "a LoRA adapter from a fine-tune and its base (mergekit-extract-lora)",
        _paragraph("""\
            Cut a PEFT LoRA adapter that turns BASE into the fine-tune: per linear
            module, the truncated SVD of FT - BASE in float32 (on CUDA when there is
            one). Embeddings and the head, and any module --save-module names, are
            saved whole; unchanged modules are left out. Reads one tensor of each
            model at a time; the adapter appears at OUT whole or not at all.
            model+adapter references apply it: tui-merge run on BASE+OUT."""),
        EXTRACT_LORA_EXAMPLES,
        (
            arg("output", metavar="OUT", nargs="?", help="the adapter's folder"),
            arg("--out-path", dest="out_path", metavar="OUT", help="the adapter's folder (mergekit's spelling)"),
            arg("--model", required=True, metavar="FT", help="the fine-tuned model (folder or hub id)"),
            arg("--base", "--base-model", dest="base", required=True, metavar="BASE",
                help="the model it was fine-tuned from"),
            arg("--max-rank", "--rank", dest="max_rank", type=int, default=128, metavar="R",
                help="the largest rank of a module (default 128, as mergekit)"),
            arg("--relative-threshold", type=float, default=0.0, metavar="F",
                help="keep only singular values of at least F times a module's largest: the rank per module"),
            arg("--sv-epsilon", type=float, default=0.0, metavar="E",
                help="keep only singular values above E (mergekit's absolute threshold)"),
            arg("--save-module", "--modules-to-save", dest="modules_to_save", action="append", default=[],
                metavar="NAME", help="save this module whole (e.g. embed_tokens, lm_head); repeatable"),
            arg("-i", "--include-regex", dest="include", action="append", default=[], metavar="REGEX",
                help="extract only the linear modules whose name matches; repeatable"),
            arg("-e", "--exclude-regex", dest="exclude", action="append", default=[], metavar="REGEX",
                help="leave out the modules whose name matches; repeatable"),
            arg("--distribute-scale", action=argparse.BooleanOptionalAction, default=True,
                help="share the singular values between A and B as square roots (default on, as mergekit)"),
            arg("--skip-undecomposable", action="store_true",
                help="leave out changed tensors that are not matrices (norms) instead of saving them whole"),
            arg("--dtype", choices=["float32", "float16", "bfloat16"],
                help="the adapter's dtype (default: the fine-tune's)"),
            arg("--device", default="auto", help="where the SVDs run: auto (CUDA when there is one), cpu, cuda:N"),
            arg("--cuda", action="store_true", help="run the SVDs on the GPU (mergekit's flag; --device cuda)"),
            arg("--force", action="store_true", help="replace an earlier adapter (or an empty folder) at OUT"),
            arg("--resume", action="store_true",
                help="continue an interrupted extraction from OUT.partial (same options and models)"),
        ),
    ),
    Command(
        "moe", "tui_merge.cli.moe_cmd:run", "a mixture of experts from dense fine-tunes (mergekit-moe)",
        _paragraph("""\
            Build a Mixtral from a mergekit-moe config: attention, norms and embeddings
            from the base, each layer's MLP of every expert model as that layer's experts,
            routers started from the experts' prompts (gate_mode). Streams one tensor at a
            time; the model appears at OUT whole or not at all, then is verified."""),
        MOE_EXAMPLES,
        (
            arg("config", metavar="CONFIG", help="mergekit-moe's YAML config"),
            arg("output", metavar="OUT", help="output folder"),
            arg("--device", default="auto",
                help="where the hidden-state routers run: auto (CUDA when there is one), cpu, cuda:N"),
            arg("--cuda", action="store_true", help="run the routers' forward passes on the GPU (mergekit's flag)"),
            arg("--out-shard-size", default="5GB", metavar="SIZE", help="largest shard file (default 5GB)"),
            arg("--force", action="store_true", help="replace an earlier output (or an empty folder) at OUT"),
            arg("--resume", action="store_true",
                help="continue an interrupted build from OUT.partial (same config and inputs): finished shards kept"),
            arg("--no-verify", dest="verify", action="store_false", help="skip tui-merge verify on OUT afterwards"),
            arg("--i-understand-this-is-not-useful-without-training", action="store_true",
                help="build even when every expert is the same model (mergekit-moe's flag)"),
            arg("--load-in-4bit", action="store_true", help=argparse.SUPPRESS),
            arg("--load-in-8bit", action="store_true", help=argparse.SUPPRESS),
        ),
    ),
)  # fmt: skip
