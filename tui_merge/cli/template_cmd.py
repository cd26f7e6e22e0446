"""``tui-merge template``: a commented config listing every layer's value, to edit in any text editor.

The per-layer quantity (``t`` for slerp and nearswap, else each model's
``weight``) is written as a gradient with one anchor per layer, so anchor i is
exactly layer i's value, one per line with the layer in a comment. Tensors
outside the layers get explicit filter rows, so nobody depends on mergekit's
rule that they take the first anchor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tui_merge.config.loading import parse_config
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import MethodSpec, get_method
from tui_merge.models.info import ModelInfo, load_model_info

_PER_LAYER_GLOBAL = ("t",)
_COMPONENT_NAMES = {"embed": "embeddings", "norm": "final norm", "head": "output head", "other": "other"}


def run(args: argparse.Namespace) -> int:
    """Inspect the models and write the template."""
    method = get_method(args.method)
    models = [load_model_info(name) for name in args.models]
    base = args.base or (args.models[0] if method.base != "none" else None)
    if base is not None and base not in args.models:
        models.insert(0, load_model_info(base))
        args.models.insert(0, base)
    text = render_template(method, args.models, models, base)
    parse_config(text, args.output)  # a template must always be a valid config
    output = Path(args.output)
    if output.exists() and not args.force:
        raise BadInputError(f"{output} already exists; choose another name or pass --force to overwrite it.")
    output.write_text(text, encoding="utf-8")
    print(f"Wrote {output}: edit the values, then run tui-merge run {output} OUT")
    return 0


def render_template(method: MethodSpec, names: list[str], models: list[ModelInfo], base: str | None) -> str:
    """The template text for ``names`` (as typed) with ``models`` (their inspections)."""
    reference = models[names.index(base)] if base else models[0]
    depth = reference.depth
    others = [name for name in names if method.base == "none" or name != base]
    share = round(1 / len(others), 2) if others else 1.0
    rows = _outside_rows(reference)
    lines = [
        f"# {method.name} merge of {len(names)} models, {depth} layers; written by tui-merge template.",
        f"# {method.summary}.",
        "# Edit the values, then: tui-merge run THIS_FILE OUT",
        "# A per-layer list holds one value per layer, layer 0 first; the filter rows",
        "# above it set the tensors outside the layers (first matching filter wins).",
        f"merge_method: {method.name}",
    ]
    if base:
        lines.append(f"base_model: {_quote(base)}")
    lines.append("models:")
    per_layer_global = next((spec for spec in method.params if spec.name in _PER_LAYER_GLOBAL), None)
    model_specs = [spec for spec in method.params if spec.scope == "model"]
    for name in names:
        lines.append(f"  - model: {_quote(name)}")
        if name not in others or not model_specs:
            continue
        lines.append("    parameters:")
        for spec in model_specs:
            value = share if spec.name == "weight" else (0.5 if spec.name == "density" else spec.default)
            if spec.name == "weight" and per_layer_global is None:
                lines += _per_layer(spec.name, value, rows, depth, indent=6)
            else:
                lines.append(f"      {spec.name}: {_number(value)}")
    global_specs = [spec for spec in method.params if spec.scope == "global"]
    if global_specs:
        lines.append("parameters:")
        for spec in global_specs:
            if spec is per_layer_global:
                lines += _per_layer(spec.name, 0.5, rows, depth, indent=2)
            else:
                value = spec.default if spec.default is not None else 0.5
                lines.append(f"  {spec.name}: {_number(value)}  # {spec.help}")
    lines.append(f"dtype: {reference.weight_dtype or 'bfloat16'}")
    lines += ["tui_merge:", "  seed: 0  # random methods replay byte for byte with the same seed", ""]
    return "\n".join(lines)


def _outside_rows(reference: ModelInfo) -> list[tuple[str, str]]:
    """(filter, comment) for each module outside the layers, named so the filter matches no layer tensor."""
    layer_names = [name for name, role in reference.roles.items() if role.layer is not None]

    def clashes(text: str) -> bool:
        return any(text in name for name in layer_names)

    rows: list[tuple[str, str]] = []
    for name, role in reference.roles.items():
        if role.layer is not None:
            continue
        module = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
        candidate = next((text for text in (module, name) if not clashes(text)), None)
        row = (candidate, _COMPONENT_NAMES.get(role.component, role.component))
        if candidate is not None and row not in rows:
            rows.append(row)
    return rows


def _per_layer(name: str, value: float, rows: list[tuple[str, str]], depth: int, indent: int) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{name}:"]
    for filter_text, comment in rows:
        lines += [f"{pad}  - filter: {_quote(filter_text)}  # {comment}", f"{pad}    value: {_number(value)}"]
    lines.append(f"{pad}  - value:  # layers")
    lines += [f"{pad}      - {_number(value)}  # layer {index}" for index in range(depth)]
    return lines


def _number(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if 0.01 <= abs(value) < 1000 or value == 0:
            return f"{value:.2f}"
        mantissa, _, exponent = f"{value:g}".partition("e")
        # YAML 1.1 readers (mergekit's) need a dot in the mantissa to see a float.
        return f"{mantissa}.0e{exponent}" if exponent and "." not in mantissa else f"{value:g}"
    return str(value)


def _quote(text: str) -> str:
    plain = text.replace("/", "").replace("-", "").replace("_", "").replace(".", "").isalnum()
    return text if plain and not text[0].isdigit() else f'"{text}"'
