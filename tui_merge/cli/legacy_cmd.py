"""``tui-merge legacy``: mergekit 0.0.2's ``mergekit-legacy`` command line, as a config.

Its rules, kept:

- the models are the ``--merge`` models in order; a ``--base-model`` that is
  not merged itself is added after them (``models:`` lists it, as
  mergekit-legacy did);
- one ``--weight`` or ``--density`` applies to every model (the added base
  too), several give one per model in that order, either for every model or
  for the ``--merge`` models only (the base then has none); any other count
  is refused (mergekit-legacy failed on more, and left models out on fewer);
- for ``slerp`` the single ``--weight`` is ``t``;
- ``--naive-count`` elects TIES signs by count (``consensus_method: count``),
  ``--int8-mask`` is accepted (masks are always exact here),
  ``--no-normalize`` turns normalizing off; each is written only for a
  method that has the parameter, and said on stderr otherwise;
- ``--bf16`` (on unless ``--no-bf16``) writes bfloat16; the merge runs on
  the CPU unless ``--cuda``, as mergekit-legacy's did; ``--no-copy-tokenizer``
  leaves the tokenizer out.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui_merge.cli.generated import run_generated
from tui_merge.config.rendering import Recipe, RecipeModel, render_recipe
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import get_method


def run(args: argparse.Namespace) -> int:
    """Build the config from mergekit-legacy's flags, then print it or merge."""
    text, notes = legacy_config(args)
    for note in notes:
        print(f"tui-merge: note: {note}", file=sys.stderr)
    return run_generated(
        text, "legacy flags", args.output, print_yaml=args.print_yaml, force=args.force, resume=args.resume,
        allow_crimes=args.allow_crimes, argv=args.argv,
    )  # fmt: skip


def legacy_config(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The config text for the flags, and notes about flags the method has no use for."""
    method = get_method(args.method)
    names = list(dict.fromkeys(args.merge))
    if len(names) != len(args.merge):
        raise BadInputError("--merge names one model twice; give each model once.")
    if args.base_model and args.base_model not in names:
        names.append(args.base_model)
    models = [RecipeModel(name) for name in names]
    parameters: dict[str, Any] = {}
    notes = []
    for flag, key, values in (("--density", "density", args.density), ("--weight", "weight", args.weight)):
        if not values or (key == "weight" and method.name == "slerp"):
            continue
        for model, value in zip(models, _one_each(flag, values, len(models), len(args.merge))):
            model.parameters[key] = value
    if method.name == "slerp":
        if len(args.weight) != 1:
            raise BadInputError(f"slerp takes exactly one --weight (its t), got {len(args.weight)}.")
        parameters["t"] = args.weight[0]
    switches = {"--normalize" if args.normalize else "--no-normalize": ("normalize", args.normalize)}
    if args.int8_mask:
        switches["--int8-mask"] = ("int8_mask", True)
    if args.naive_count:
        switches["--naive-count"] = ("consensus_method", "count")
    for flag, (key, value) in switches.items():
        if method.param(key) is not None:
            parameters[key] = value
        elif flag != "--normalize":  # the default, said only when asked for
            notes.append(f"{flag} has no effect on {method.name}, which has no {key}; left out of the config")
    options: dict[str, Any] = {"device": "cuda" if args.cuda else "cpu"}
    if not args.copy_tokenizer:
        options["copy_tokenizer"] = False
    recipe = Recipe(
        method=method.name, models=models, base=args.base_model, parameters=parameters,
        dtype="bfloat16" if args.bf16 else None, tui_merge=options,
        comments=["from tui-merge legacy (mergekit-legacy's flags)"],
    )  # fmt: skip
    return render_recipe(recipe), notes


def _one_each(flag: str, values: list[float], count: int, merged: int) -> list[float]:
    """``values`` spread over ``count`` models, the first ``merged`` of them given with --merge."""
    if len(values) == 1:
        return values * count
    if len(values) not in (count, merged):
        raise BadInputError(
            f"{flag} was given {len(values)} times for {merged} --merge models; give one value for all of them "
            "or one per model, in the order of --merge (then one for a base model that is not merged)."
        )
    return values
