"""``tui-merge circuit``: Circuit-Merge's command line and config file, as a ``circuit`` merge config.

Arguments are ``BASE VARIANT [VARIANT...] OUT`` with the variants in
priority order, highest first, and the method's parameters as flags. A
``--config`` file in Circuit-Merge's format (``base_model``,
``variant_models``, ``output_dir``, ``parameters``) gives the same; what the
command line gives wins over the file. ``--test`` runs ``circuit_check``'s
self-check instead of a merge.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tui_merge.cli.generated import run_generated
from tui_merge.config.loading import load_yaml
from tui_merge.config.rendering import Recipe, RecipeModel, render_recipe
from tui_merge.errors import BadInputError, suggestion
from tui_merge.methods.registry import get_method

PARAMETERS = ("temperature", "base_droprate", "meaningful_change_threshold", "epsilon", "skip_rescaling")
"""The circuit method's parameters, as flags and as keys of a config file's ``parameters``."""

_FILE_KEYS = ("base_model", "variant_models", "output_dir", "parameters")


def run(args: argparse.Namespace) -> int:
    """Self-check, or build the config and print it or merge."""
    if args.test:
        from tui_merge.methods.circuit_check import print_self_check

        return print_self_check()
    settings = read_circuit_file(Path(args.config)) if args.config else {}
    base, variants, output = _models(args, settings)
    parameters = dict(settings.get("parameters", {}))
    for name in (*PARAMETERS, "seed"):
        if getattr(args, name) is not None:
            parameters[name] = getattr(args, name)
    text = circuit_config(base, variants, parameters)
    return run_generated(
        text, args.config or "circuit arguments", output, print_yaml=args.print_yaml, force=args.force,
        resume=args.resume, allow_crimes=args.allow_crimes, argv=args.argv,
    )  # fmt: skip


def read_circuit_file(path: Path) -> dict[str, Any]:
    """A Circuit-Merge YAML config, its keys and parameter names checked."""
    data = load_yaml(path, "Circuit config")
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a circuit config is a mapping with base_model, variant_models and output_dir.")
    for key in data:
        if key not in _FILE_KEYS:
            raise BadInputError(f"{path}: unknown key {key!r}{suggestion(str(key), _FILE_KEYS)}")
    variants = data.get("variant_models", [])
    if not isinstance(variants, list) or not all(isinstance(name, str) for name in variants):
        raise BadInputError(f"{path}: variant_models must be a list of model folders or ids, highest priority first.")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadInputError(f"{path}: parameters must be a mapping like {{temperature: 0.5}}.")
    for name in parameters:
        if name not in (*PARAMETERS, "seed"):
            raise BadInputError(
                f"{path}: unknown parameter {name!r} under parameters{suggestion(str(name), (*PARAMETERS, 'seed'))}"
            )
    return {**data, "parameters": parameters}


def _models(args: argparse.Namespace, settings: dict[str, Any]) -> tuple[str, list[str], str | None]:
    if args.models:
        if len(args.models) < 3 and not (args.print_yaml and len(args.models) == 2):
            raise BadInputError(
                "circuit takes BASE VARIANT [VARIANT...] OUT: a base, at least one variant and the output folder."
            )
        if args.print_yaml and len(args.models) == 2:
            return args.models[0], [args.models[1]], None
        return args.models[0], list(args.models[1:-1]), args.models[-1]
    base, variants = settings.get("base_model"), settings.get("variant_models") or []
    if not base or not variants:
        raise BadInputError(
            "Name the models: tui-merge circuit BASE VARIANT [VARIANT...] OUT, or a --config file with base_model "
            "and variant_models."
        )
    output = settings.get("output_dir")
    return str(base), [str(name) for name in variants], None if output is None else str(output)


def circuit_config(base: str, variants: list[str], parameters: dict[str, Any]) -> str:
    """The circuit merge config: every parameter written out, defaults included, so the recipe says it all."""
    method = get_method("circuit")
    values = {spec.name: parameters.get(spec.name, spec.default) for spec in method.params}
    for spec in method.params:
        value = values[spec.name]
        where = f"--{spec.name} (or parameters.{spec.name} in the config file)"
        problem = spec.problem(value)
        if problem is not None:
            raise BadInputError(f"{where} {problem}.")
    seed = parameters.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise BadInputError(f"The seed must be a whole number, got {seed!r}.")
    recipe = Recipe(
        method="circuit",
        models=[RecipeModel(name) for name in variants],
        base=base,
        parameters=values,
        tui_merge={"seed": seed},
        comments=[
            f"Circuit merge of {len(variants)} variant(s) onto {base}; written by tui-merge circuit.",
            "Variants are listed highest priority first.",
        ],
        notes={spec.name: spec.help for spec in method.params},
    )
    return render_recipe(recipe)
