"""``tui-merge blockmerge``: the BlockMerge Gradient script's command line, as a linear merge config.

A gradient value is the share of model 2 (1.0: all of model 2, 0.0: all of
model 1). The values are anchors spread evenly over the depth, first layer
to last, and each layer takes the linear interpolation at its place; every
tensor of a layer (attention, MLP, norms) gets the layer's ratio. The
original script interpolated over the position in its list of tensors, which
gives a layer's attention and MLP slightly different ratios; depth is what
the ratio means. Tensors outside the layers sit before the first layer
(embeddings: the first value) or after the last (final norm, head, anything
else: the last value). ``--layer_only`` blends only the layers and takes
the rest from model 1; ``--no_layers`` blends only the rest and takes the
layers from model 1.

The output keeps model 1's vocabulary, as the script did: when model 2 has
more rows they are cut (``vocab: truncate``), when it has fewer they are
filled with its mean row (``vocab: pad``), with a warning; rows always
match by position. Tokenizer files come from model 1 (``tokenizer_source``).
"""

from __future__ import annotations

import argparse
import sys

from tui_merge.cli.generated import run_generated
from tui_merge.config.parameters import layer_values, outside_value, parse_anchors
from tui_merge.config.rendering import PerLayer, Recipe, RecipeModel, outside_rows, render_recipe
from tui_merge.config.schema import parse_size
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo, load_model_info
from tui_merge.vocab.tokenizer import has_tokenizer


def run(args: argparse.Namespace) -> int:
    """Build the config from the script's flags, then print it or merge."""
    gradient = parse_gradient(args.gradient_values)
    try:
        parse_size(args.max_shard_size)
    except ValueError as error:
        raise BadInputError(f"--max_shard_size: {error}.") from None
    first, second = load_model_info(args.model_path1), load_model_info(args.model_path2)
    text, warnings = blockmerge_config(
        args.model_path1, args.model_path2, first, second, gradient,
        shard_size=args.max_shard_size, layer_only=args.layer_only, no_layers=args.no_layers,
    )  # fmt: skip
    for warning in warnings:
        print(f"tui-merge: warning: {warning}", file=sys.stderr)
    return run_generated(
        text, "blockmerge flags", args.output_model_path, print_yaml=args.print_yaml, force=args.force,
        resume=args.resume, allow_crimes=args.allow_crimes, argv=args.argv,
    )  # fmt: skip


def parse_gradient(text: str) -> list[float]:
    """``'[1.0, 0.5, 0.0]'`` (or one number) as floats between 0 and 1."""
    values = parse_anchors(text)
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise BadInputError(
            "--gradient_values must be a list of numbers between 0 and 1 (shares of model 2), like "
            f"'[1.0, 0.5, 0.0]'; got {text!r}."
        )
    return values


def blockmerge_config(
    name1: str,
    name2: str,
    first: ModelInfo,
    second: ModelInfo,
    gradient: list[float],
    *,
    shard_size: str,
    layer_only: bool = False,
    no_layers: bool = False,
) -> tuple[str, list[str]]:
    """The linear merge config these flags mean, and the warnings to print."""
    rows = outside_rows(first)
    layers = [0.0] * first.depth if no_layers else layer_values(gradient, first.depth)
    outside = [(row, 0.0 if layer_only else outside_value(row.component, gradient)) for row in rows]
    warnings = []
    # Always a positional strategy: rows match by position as the script's did, and a tokenizer_source alone
    # would match them by token instead. Truncating to the smallest keeps model 1's rows unless model 2 has fewer.
    smaller = bool(first.vocab_rows and second.vocab_rows and second.vocab_rows < first.vocab_rows)
    tui_merge: dict[str, object] = {"shard_size": shard_size, "vocab": "pad" if smaller else "truncate"}
    if first.vocab_rows and second.vocab_rows and first.vocab_rows != second.vocab_rows:
        fate = (
            "its extra rows are cut"
            if second.vocab_rows > first.vocab_rows
            else "its missing rows are filled with its mean row"
        )
        warnings.append(
            f"vocabularies differ ({first.label} has {first.vocab_rows} rows, {second.label} has "
            f"{second.vocab_rows}): the output keeps model 1's {first.vocab_rows} rows as BlockMerge did; "
            f"for model 2 {fate}."
        )
    comments = [
        f"BlockMerge Gradient: {first.label} (model 1) and {second.label} (model 2); written by tui-merge blockmerge.",
        f"Gradient {gradient}: model 2's share, interpolated over the {first.depth} layers.",
    ]
    if layer_only:
        comments.append("--layer_only: tensors outside the layers come from model 1.")
    if no_layers:
        comments.append("--no_layers: the layers come from model 1.")
    comments += [f"warning: {warning}" for warning in warnings]
    recipe = Recipe(
        method="linear",
        models=[
            RecipeModel(name1, {"weight": _complement(outside, layers)}),
            RecipeModel(name2, {"weight": PerLayer(outside, layers)}),
        ],
        dtype=first.weight_dtype,
        tokenizer_source=f"model:{name1}" if has_tokenizer(first.folder) else None,
        tui_merge=tui_merge,
        comments=comments,
    )
    return render_recipe(recipe), warnings


def _complement(outside: list, layers: list[float]) -> PerLayer:
    return PerLayer([(row, 1.0 - share) for row, share in outside], [1.0 - share for share in layers])
