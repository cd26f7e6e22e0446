"""The config.json a merge writes, and the check that it describes the merged tensors.

``output_model_config`` is the reference model's config made true of the
output (depth, vocabulary rows, dtype, special token ids). ``output_config_gate``
asks transformers, before a byte is written, whether that config describes
the tensors the merge will write (``models.architecture_fit``) and whether
it accepts the generation settings. Importing transformers' model classes
for that costs about two seconds, so a check that passed is remembered in
the user cache, keyed by the config, the tensor shapes, the generation
settings and the transformers version: a replay, a resumed merge and every
candidate of a sweep ask it once. A check that fails is never remembered.
"""

from __future__ import annotations

import hashlib
import itertools
import json

from tui_merge.engine.plan import Plan
from tui_merge.errors import BadInputError
from tui_merge.vocab.output import agree_on_special_ids

_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")

PER_LAYER_VALUES = (
    "layer_types", "mlp_layer_types", "layers_block_type", "layer_rope_theta", "no_rope_layers",
    "num_key_value_heads_per_layer", "num_attention_heads_per_layer",
)  # fmt: skip
"""Config keys holding one value per layer (transformers checks some against ``num_hidden_layers``): a layer
stacking merge writes the value of each output layer's source layer. Named here because a list of the
depth's length is not always per-layer (a rope factor list can have that length by chance)."""

LAYER_INDEX_LISTS = ("mlp_only_layers", "moe_layers", "cross_attention_layers", "hybrid_layer_ids")
"""Config keys listing the indices of layers of a kind: a layer stacking merge lists the output layers whose
source layer is listed."""

LAYER_RULES = (
    "first_k_dense_replace", "decoder_sparse_step", "moe_layer_freq", "sliding_window_pattern",
    "interleave_moe_layer_step", "full_attention_interval", "moe_layer_start_index", "moe_layer_end_index",
    "moe_layer_interval",
)  # fmt: skip
"""Config keys that give a per-layer pattern as a rule; a stacking that breaks the rule is refused naming it."""


def output_model_config(plan: Plan) -> dict:
    """The reference model's config.json with depth, vocabulary and dtype made true of the output."""
    config = json.loads(json.dumps(plan.reference.facts.raw))
    target = config.get("text_config") if _nested(config) else config
    layer_key = _depth_key(target, plan.reference.block_prefix)
    if plan.layer_sources is not None:
        # Only a stacking changes the depth. A merge of whole models keeps the reference's keys as they are: a
        # count that legitimately differs from the numbered blocks (layers sharing one block), or no count at
        # all where the config names its stacks otherwise (moonshine's decoder_num_hidden_layers, which a new
        # num_hidden_layers would overwrite, since transformers takes it as an alias).
        target[layer_key] = plan.num_layers
        _follow_the_slices(target, plan, config is not target)
        _fit_layer_rules(config, target, plan)
    reference = plan.reference
    tracks_rows = reference.facts.vocab_size in (None, reference.vocab_rows)
    if plan.vocab_rows is not None and (tracks_rows or plan.vocab_rows != reference.vocab_rows):
        # A vocab_size that legitimately differs from the rows (rows for prompts beyond it) stays as it is.
        target["vocab_size"] = plan.vocab_rows
    tokenizer = plan.vocabulary.tokenizer
    if tokenizer is not None:
        for place in {id(config): config, id(target): target}.values():
            agree_on_special_ids(place, tokenizer.special_ids, plan.vocab_rows)
    dtype_keys = [key for key in ("torch_dtype", "dtype") if key in config] or ["torch_dtype"]
    for key in dtype_keys:
        config[key] = plan.out_dtype
    if plan.tie_word_embeddings is not None:
        place = next((where for where in (config, target) if "tie_word_embeddings" in where), config)
        place["tie_word_embeddings"] = plan.tie_word_embeddings
    if plan.quantize_block is None:
        # Block-scaled FP8 inputs were read as their values: the output holds plain weights, and says so.
        config.pop("quantization_config", None)
    return config


_STACK_DEPTH_KEYS = {
    "decoder": ("num_decoder_layers", "decoder_layers", "decoder_num_hidden_layers"),
    "encoder": ("num_encoder_layers", "encoder_layers", "encoder_num_hidden_layers"),
}
"""Depth keys of the two stacks of an encoder-decoder, whose plain ``num_layers`` is the encoder's (t5)."""


def _depth_key(config: dict, block_prefix: str | None) -> str:
    """The config key that gives the main stack's depth: a decoder's own key when the stack the merge counts is
    an encoder-decoder's decoder (``num_decoder_layers``), else the usual one."""
    first = (block_prefix or "").split(".")[0]
    for stack, keys in _STACK_DEPTH_KEYS.items():
        if stack in first:
            found = next((key for key in keys if key in config), None)
            if found is not None:
                return found
    return next((key for key in _LAYER_KEYS if key in config), "num_hidden_layers")


def _follow_the_slices(target: dict, plan: Plan, nested: bool) -> None:
    """Per-layer arrays and layer index lists of ``target`` rewritten for the output's layers, each taken from
    the config of the model its layer comes from."""

    def source_config(info) -> dict:
        raw = info.facts.raw
        return raw.get("text_config", raw) if nested and isinstance(raw.get("text_config"), dict) else raw

    sources = plan.layer_sources
    for key in PER_LAYER_VALUES:
        if not isinstance(target.get(key), list):
            continue
        values = []
        for info, layer in sources:
            own = source_config(info).get(key)
            if not isinstance(own, list) or len(own) != info.depth:
                raise BadInputError(
                    f"{info.folder / 'config.json'} gives {key} with {len(own) if isinstance(own, list) else 'no'} "
                    f"values for its {info.depth} layers, so the stacked layers' values cannot be known; correct it."
                )
            values.append(own[layer])
        target[key] = values
    for key in LAYER_INDEX_LISTS:
        if isinstance(target.get(key), list) and all(isinstance(index, int) for index in target[key]):
            target[key] = [
                output for output, (info, layer) in enumerate(sources) if layer in (source_config(info).get(key) or [])
            ]


_RULE_FITS: dict[str, dict[str, int]] = {}
"""Rule values found for a stacked config (keyed by the config and the tensors), so the gate and the writer,
which both build the output config, search once."""


def _fit_layer_rules(config: dict, target: dict, plan: Plan) -> None:
    """Rewrite the rules of ``target`` that say which layers are of which kind (``moe_layer_end_index``,
    ``first_k_dense_replace``...) so that transformers builds the stacked layers as they are.

    A rule is an index into the parents' layers; each is tried as it is, and moved to the output index of the
    first stacked layer at or after it (a start, a count of leading dense layers) or of the last one at or
    before it (an end): ernie4_5_moe's ``moe_layer_end_index`` of a 3-layer parent (2) becomes 3 for a stack of
    four layers. The first combination with which transformers' model takes every tensor with its shape is
    written. None fitting, the rules stay as they are and the output check refuses the stack naming them.
    Asked of transformers only for a stacking whose config holds such a rule.
    """
    rules = [key for key in LAYER_RULES if isinstance(target.get(key), int) and not isinstance(target[key], bool)]
    if not rules:
        return
    shapes = {task.name: list(task.shape) for task in plan.tasks if task.scales_of is None}
    key = hashlib.sha256(json.dumps([config, shapes], sort_keys=True, default=str).encode()).hexdigest()
    if key not in _RULE_FITS:
        if len(_RULE_FITS) >= 64:
            _RULE_FITS.clear()
        _RULE_FITS[key] = _search_rules(config, target, plan, rules, shapes)
    target.update(_RULE_FITS[key])


def _search_rules(config, target, plan, rules, shapes) -> dict[str, int]:
    from tui_merge.models.architecture_fit import architecture_fit, known_model_type

    if not known_model_type(config):
        return {}
    source_layers = [layer for _, layer in plan.layer_sources]

    def at_or_after(value: int) -> int:
        return next((output for output, layer in enumerate(source_layers) if layer >= value), len(source_layers))

    def at_or_before(value: int) -> int:
        return max((output for output, layer in enumerate(source_layers) if layer <= value), default=-1)

    choices = [dict.fromkeys([target[rule], at_or_after(target[rule]), at_or_before(target[rule])]) for rule in rules]
    original = {rule: target[rule] for rule in rules}
    try:
        for values in itertools.product(*choices):
            target.update(zip(rules, values))
            try:
                fit = architecture_fit(config, shapes, source=plan.reference.folder / "config.json")
            except BadInputError:
                continue
            if not fit.problems(with_unexpected=False):
                return dict(zip(rules, values))
    finally:
        target.update(original)
    return {}


def _nested(config: dict) -> bool:
    return isinstance(config.get("text_config"), dict) and not any(key in config for key in _LAYER_KEYS)


def output_config_gate(plan: Plan) -> list[str]:
    """Check that the config.json the merge will write describes the tensors it will write, as transformers
    reads it, and that transformers accepts the generation_config.json it will copy; raises BadInputError
    (nothing written) when not. A model type the installed transformers does not know is not checked: one
    warning says so. Tensors transformers has no place for (an old checkpoint's rotary buffers) are a warning.
    """
    config = output_model_config(plan)
    # FP8 scales are the quantizer's, not the model's: transformers builds no place for them on the meta device.
    shapes = {task.name: list(task.shape) for task in plan.tasks if task.scales_of is None}
    key = _check_key(config, shapes, plan.generation_config)
    cached = _remembered(key)
    if cached is not None:
        return cached
    warnings = _checked(plan, config, shapes)
    _remember(key, warnings)
    return warnings


def _checked(plan: Plan, config: dict, shapes: dict[str, list[int]]) -> list[str]:
    from tui_merge.models.architecture_fit import architecture_fit, known_model_type

    source = plan.reference.folder / "config.json"
    if "model_type" in config and not known_model_type(config):
        import transformers

        return [
            f"transformers {transformers.__version__} does not know model type {config['model_type']!r}, so the "
            "merged config.json was not checked against the merged tensors."
        ]
    fit = architecture_fit(config, shapes, source=source)
    problems = fit.problems(with_unexpected=False)
    rules = [key for key in LAYER_RULES if plan.layer_sources is not None and _has_key(config, key)]
    if problems and rules:
        raise BadInputError(
            f"{plan.loaded.source}: the layers the slices stack break {source}'s {' / '.join(rules)} rule (which "
            f"layers are of which kind): {fit.model_class} built from it would have " + "; ".join(problems) + ". "
            "Choose slices that keep the rule's pattern."
        )
    if problems:
        raise BadInputError(
            f"{source} does not describe the merged tensors: {fit.model_class} built from it would have "
            + "; ".join(problems)
            + ". Correct that config.json or download the model again."
        )
    if plan.generation_config is not None:
        _check_generation_config(plan)
    if fit.unexpected:
        listed = ", ".join(fit.unexpected[:3])
        return [f"{fit.model_class} has no place for {len(fit.unexpected)} merged tensor(s) ({listed}); "
                "transformers will skip them when it loads the merge."]  # fmt: skip
    return []


def _has_key(config: dict, key: str) -> bool:
    return config.get(key) is not None or (isinstance(config.get("text_config"), dict) and
                                          config["text_config"].get(key) is not None)  # fmt: skip


def _check_generation_config(plan: Plan) -> None:
    import transformers

    path = plan.reference.folder / "generation_config.json"
    try:
        transformers.GenerationConfig.from_dict(dict(plan.generation_config))
    except MemoryError:  # short of memory is not a damaged file: said as such by the CLI
        raise
    except Exception as error:  # transformers raises many kinds; each means the settings cannot be used
        raise BadInputError(
            f"{path} holds settings transformers refuses ({type(error).__name__}: {error}); correct or remove it."
        ) from None


def _check_key(config: dict, shapes: dict[str, list[int]], generation: dict | None) -> str:
    from importlib.metadata import version

    payload = json.dumps([version("transformers"), config, sorted(shapes.items()), generation], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _remembered(key: str) -> list[str] | None:
    from tui_merge.user_cache import cache_folder

    path = cache_folder() / "config-checks" / f"{key[:32]}.json"
    try:
        warnings = json.loads(path.read_text(encoding="utf-8"))["warnings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return warnings if isinstance(warnings, list) and all(isinstance(item, str) for item in warnings) else None


def _remember(key: str, warnings: list[str]) -> None:
    from tui_merge.user_cache import cache_folder

    folder = cache_folder() / "config-checks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{key[:32]}.json").write_text(json.dumps({"warnings": warnings}), encoding="utf-8")
    except OSError:
        pass  # a cache that cannot be written only means the next run checks again
