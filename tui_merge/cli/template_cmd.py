"""``tui-merge template``: a commented config listing every layer's value, to edit in any text editor.

The per-layer quantity (``t`` for slerp and nearswap, else each model's
``weight``) is written with one value per layer, one per line with the layer
in a comment; tensors outside the layers get explicit filter rows, so nobody
depends on mergekit's rule that they take a gradient's first anchor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_merge.config.loading import parse_config
from tui_merge.config.rendering import PerLayer, Recipe, RecipeModel, outside_rows, render_recipe, stack_rows
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import get_method
from tui_merge.methods.spec import MethodSpec
from tui_merge.models.info import ModelInfo, load_model_info, repeated_model, same_model_sentence


def run(args: argparse.Namespace) -> int:
    """Inspect the models and write the template."""
    method = get_method(args.method)
    names = list(args.models)
    models = [load_model_info(name) for name in names]
    base = args.base or (names[0] if method.base != "none" else None)
    repeated = repeated_model(list(zip(names, models)))
    if repeated is not None:
        raise BadInputError(same_model_sentence(*repeated))
    if base is not None and base not in names:
        models.insert(0, load_model_info(base))
        names.insert(0, base)
    text = render_recipe(template_recipe(method, names, models, base))
    parse_config(text, args.output)  # a template must always be a valid config
    output = Path(args.output)
    if args.stage:
        return _write_stage(text, args.stage, output)
    if output.exists() and not args.force:
        raise BadInputError(f"{output} already exists; choose another name or pass --force to overwrite it.")
    output.write_text(text, encoding="utf-8")
    print(f"Wrote {output}: edit the values, then run tui-merge run {output} OUT")
    return 0


def _write_stage(text: str, name: str, output: Path) -> int:
    """The template as stage ``name`` of a multi-stage recipe: a new file, or one more document of ``output``."""
    from tui_merge.config.loading import read_text
    from tui_merge.tools.stages import add_stage, write_recipe

    earlier = read_text(output, "Recipe") if output.exists() else ""
    combined = add_stage(earlier, text, name, str(output))  # a name given twice is refused before the file changes
    write_recipe(output, combined)
    print(f"Wrote stage {name} into {output}: later stages use it as a model by that name; "
          f"tui-merge run {output} OUT runs them all")  # fmt: skip
    return 0


def template_recipe(method: MethodSpec, names: list[str], models: list[ModelInfo], base: str | None) -> Recipe:
    """Default values for every parameter, the per-layer one spelled out layer by layer."""
    reference = models[names.index(base)] if base else models[0]
    rows = outside_rows(reference)
    others = [name for name in names if method.base == "none" or name != base]
    share = round(1 / len(others), 2) if others else 1.0
    varying = method.per_layer_param

    def value(name: str, default: object) -> object:
        if name == varying:
            return PerLayer([(row, default) for row in rows], [default] * reference.depth,
                            stacks=[(stack, [default] * stack.depth) for stack in stack_rows(reference)])  # fmt: skip
        return default

    recipe_models = []
    for name in names:
        parameters = {}
        if name in others:
            for spec in method.params:
                if spec.scope == "model":
                    default = share if spec.name == "weight" else spec.starting_value
                    parameters[spec.name] = value(spec.name, default)
        recipe_models.append(RecipeModel(name, parameters))
    global_specs = [spec for spec in method.params if spec.scope == "global"]
    return Recipe(
        method=method.name,
        models=recipe_models,
        base=base,
        parameters={spec.name: value(spec.name, spec.starting_value) for spec in global_specs},
        dtype=reference.weight_dtype or "bfloat16",
        tui_merge={"seed": 0},
        comments=[
            f"{method.name} merge of {len(names)} models, {reference.depth} layers"
            + "".join(f", {stack.label} of {stack.depth}" for stack in stack_rows(reference))
            + "; written by tui-merge template.",
            f"{method.summary}.",
            "Edit the values, then: tui-merge run THIS_FILE OUT",
            "A per-layer list holds one value per layer, layer 0 first; the filter rows",
            "above it set the tensors outside the layers (first matching filter wins).",
        ],
        notes={spec.name: spec.help for spec in global_specs},
    )
