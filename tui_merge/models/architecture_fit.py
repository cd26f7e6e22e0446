"""Whether a config.json describes a set of tensors, as transformers would read them.

transformers builds the model the config describes on the meta device (names
and shapes, no weights allocated) and its state dict is compared with the
tensors: the ones it expects and does not find (tied heads aside), the ones
it would ignore, and the ones of another shape. ``tui-merge verify`` asks
this of a merged folder; a merge asks it of the config it is about to write,
before the first byte, so a config.json whose sizes disagree with the
weights is refused instead of producing a model nobody can load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError

_EXAMPLES = 3


@dataclass(frozen=True)
class ArchitectureFit:
    """How the model a config describes compares with the tensors at hand."""

    model_class: str
    """The transformers class built from the config, e.g. ``LlamaForCausalLM``."""
    missing: list[str] = field(default_factory=list)
    """Tensors the model needs that are not there (tied ones aside)."""
    unexpected: list[str] = field(default_factory=list)
    """Tensors the model has no place for; transformers drops them on loading."""
    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    """(name, shape at hand, shape the model expects)."""

    def problems(self, *, with_unexpected: bool = True) -> list[str]:
        """The differences in words, a few examples each."""
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} missing ({', '.join(self.missing[:_EXAMPLES])})")
        if self.unexpected and with_unexpected:
            found.append(f"{len(self.unexpected)} unexpected ({', '.join(self.unexpected[:_EXAMPLES])})")
        found += [
            f"{name} is {list(shape)}, expected {list(expected)}"
            for name, shape, expected in self.wrong_shape[:_EXAMPLES]
        ]
        return found


def known_model_type(config: dict[str, Any]) -> bool:
    """True when the installed transformers has a config class for ``config``'s model_type."""
    from transformers import CONFIG_MAPPING

    return isinstance(config.get("model_type"), str) and config["model_type"] in CONFIG_MAPPING


def architecture_fit(config: dict[str, Any], shapes: Mapping[str, Sequence[int]], *, source: Path) -> ArchitectureFit:
    """Build the model ``config`` describes on the meta device and compare it with ``shapes`` (name -> shape).

    ``source`` is the config.json the description came from, named in errors.
    Raises BadInputError when transformers cannot build a model from the config
    at all (no or an unknown model_type, values it rejects).
    """
    import torch
    import transformers
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise BadInputError(
            f"{source} has no model_type, so transformers cannot tell which architecture it describes; "
            'add the model_type of its family (e.g. "llama") or download the model again.'
        )
    if model_type not in CONFIG_MAPPING:
        raise BadInputError(
            f"{source} has model_type {model_type!r}, which transformers {transformers.__version__} does not know."
        )
    transformers.logging.set_verbosity_error()
    try:
        described = _as_read(CONFIG_MAPPING[model_type], config)
        with torch.device("meta"):
            model = _model_class(described)._from_config(described)
    except MemoryError:  # short of memory is not a damaged file: said as such by the CLI
        raise
    except Exception as error:  # transformers raises many kinds; each means the architecture cannot be built
        kind = type(error).__name__
        raise BadInputError(f"transformers cannot build a model from {source} ({kind}: {error}).") from None
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    tied = set(getattr(model, "all_tied_weights_keys", None) or {}) | set(
        getattr(model, "_tied_weights_keys", None) or []
    )
    stored: dict[str, tuple[int, ...]] = {}
    fused: set[str] = set()
    """In-memory tensors the loader builds from several stored ones (experts fused into one tensor): their shape
    is the loader's to make, not one stored tensor's."""
    loading_names = _loading_names(model, expected)
    for name, shape in shapes.items():
        loaded, converted = loading_names(name)
        for target in loaded:
            stored[target] = tuple(shape)
            if converted:
                fused.add(target)
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and not (set(stored) & set(expected)):
        stored = {f"{prefix}.{name}": shape for name, shape in stored.items()}
        fused = {f"{prefix}.{name}" for name in fused}
    missing, unexpected = _as_the_loader_counts(
        model, {name for name in set(expected) - set(stored) if name not in tied}, set(stored) - set(expected)
    )
    return ArchitectureFit(
        model_class=type(model).__name__,
        missing=sorted(missing),
        unexpected=sorted(unexpected),
        wrong_shape=[
            (name, stored[name], expected[name])
            for name in sorted(set(expected) & set(stored))
            if expected[name] != stored[name] and name not in fused
        ],
    )


def _loading_names(model, expected: Mapping[str, Any]):
    """A function from a stored tensor name to the names transformers' loader gives what it builds from it in
    this model, and whether a converter is involved (per-expert matrices fused into one tensor, a fused
    ``query_key_value`` split into ``q_proj``, ``k_proj`` and ``v_proj``): the shapes are then the loader's to
    make, not one stored tensor's.

    The loader's own ``rename_source_key`` over the model's checkpoint conversion mapping (renamings, then at
    most one converter, then the base model prefix added or taken off) where this transformers has them; a
    converter with several targets gives each of them, named as the first one is. Without them, the mapping's
    one-to-one renamings alone.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, rename_source_key

        transforms = list(get_model_conversion_mapping(model))
    except Exception:  # an older or newer transformers without them: the simple renamings, or none
        renames = _renames(model)
        return lambda name: ([_loading_name(name, renames)], False)
    renamings = [transform for transform in transforms if not isinstance(transform, WeightConverter)]
    converters = [transform for transform in transforms if isinstance(transform, WeightConverter)]
    prefix = getattr(model, "base_model_prefix", None) or None

    def loading_names(name: str) -> tuple[list[str], bool]:
        try:
            renamed, converted = rename_source_key(name, renamings, converters, prefix, expected)
            if renamed not in expected and name in expected:
                # As the loader does: a name the model already has was not meant to be renamed
                # (deepseek_v4's ``.norm.`` renaming is its attention's, not the final ``model.norm``).
                renamed, converted = rename_source_key(name, [], [], prefix, expected)
        except Exception:  # noqa: BLE001 - a key the mapping cannot take is compared as stored
            return [name], False
        if converted is None:
            return [renamed], False
        converter = next((item for item in converters if converted in (item.source_patterns or [])), None)
        targets = [_literal(target) for target in (getattr(converter, "target_patterns", None) or [])]
        if len(targets) < 2 or targets[0] not in renamed:
            return [renamed], True
        return [renamed.replace(targets[0], target, 1) for target in targets], True

    return loading_names


def _literal(pattern: str) -> str:
    """A conversion pattern as the text it matches (``\\.self_attn\\.`` is ``.self_attn.``)."""
    import re

    return re.sub(r"\\(.)", r"\1", str(pattern)).strip("^$")


def _as_the_loader_counts(model, missing: set[str], unexpected: set[str]) -> tuple[set[str], set[str]]:
    """``missing`` and ``unexpected`` less what transformers' own loader tolerates for this class: the keys its
    ``_keys_to_ignore_on_load_*`` patterns name (GPT-2's and GPT-J's causal-mask ``attn.bias``) and persisted
    buffers that are no longer saved (``position_ids``, rotary ``inv_freq``). The loader's own rule is asked
    where this transformers has it, so verify accepts exactly what ``from_pretrained`` loads without a word."""
    import re
    from types import SimpleNamespace

    found = SimpleNamespace(missing_keys=set(missing), unexpected_keys=set(unexpected))
    adjust = getattr(model, "_adjust_missing_and_unexpected_keys", None)
    if adjust is not None:
        try:
            adjust(found)
            return set(found.missing_keys), set(found.unexpected_keys)
        except Exception:  # noqa: BLE001 - its signature changed: fall back to the rule it implements
            pass
    saved = set(model.state_dict())
    patterns = list(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])
    patterns += [re.escape(name) + "$" for name, _ in model.named_buffers() if name not in saved]
    tolerated = re.compile("|".join(f"({pattern})" for pattern in patterns)) if patterns else None
    return missing, {name for name in unexpected if tolerated is None or tolerated.search(name) is None}


def rows_as_built(model) -> bool:
    """True when transformers, building the model config.json describes, gives the token embedding the rows the
    checkpoint stores: a vocab_size that legitimately differs from them (rows for prompts or segments beyond
    the vocabulary) is then no damage. Asked only when the two differ, since it imports transformers."""
    name = model.embedding_name
    if name is None or not known_model_type(model.facts.raw):
        return False
    try:
        fit = architecture_fit(model.facts.raw, {name: model.tensors[name].shape}, source=model.folder / "config.json")
    except BadInputError:
        return False
    return not fit.unexpected and not fit.wrong_shape


MOST_LAYERS_BUILT = 512
"""Beyond this many layers a config is not built to be asked (building takes about a millisecond a layer on the
meta device, and a hostile count of millions would take minutes); real models have at most a few hundred."""


@lru_cache(maxsize=64)
def built_exactly(model) -> bool:
    """True when transformers builds, from the model's config.json, a model that takes every stored tensor with
    its shape and needs no other: then a layer count that differs from the numbered blocks (layers that share
    one block's weights, blocks nested in groups) is how the family is made, not damage. Asked only when the
    config and the weights seem to disagree, since it imports transformers."""
    if not known_model_type(model.facts.raw) or (model.facts.num_layers or 0) > MOST_LAYERS_BUILT:
        return False
    shapes = {name: entry.shape for name, entry in model.tensors.items()}
    try:
        fit = architecture_fit(model.facts.raw, shapes, source=model.folder / "config.json")
    except BadInputError:
        return False
    return not fit.problems()


def is_causal_language_model(config: dict[str, Any]) -> bool:
    """True when the class config.json names (else the model type's default) predicts the next token; an
    encoder (``BertModel``) or a masked language model is not one. False when transformers cannot tell."""
    import transformers
    from transformers import CONFIG_MAPPING

    if not known_model_type(config):
        return False
    try:
        model_class = _model_class(_as_read(CONFIG_MAPPING[config["model_type"]], config))
    except Exception:  # transformers raises many kinds; a config it cannot read names no language model
        return False
    causal = transformers.AutoModelForCausalLM._model_mapping
    return model_class is causal.get(model_class.config_class, None)


def _as_read(config_class, config: dict[str, Any]):
    """The config object transformers makes of ``config`` when it reads config.json: floats JSON cannot hold,
    which it writes as ``{"__float__": "Infinity"}``, decoded first (falcon_h1's ``time_step_limit``)."""
    decode = getattr(config_class, "_decode_special_floats", None)
    return config_class.from_dict(decode(dict(config)) if decode is not None else dict(config))


def _renames(model) -> list[tuple[str, str]]:
    """The checkpoint key renamings transformers applies when it loads this model (old names in old checkpoints).

    Read from transformers' conversion mapping where it offers one; without
    it, names are compared as stored.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping

        transforms = get_model_conversion_mapping(model)
    except Exception:  # an older or newer transformers without this mapping: compare names as stored
        return []
    renames = []
    for transform in transforms:
        sources, targets = getattr(transform, "source_patterns", None), getattr(transform, "target_patterns", None)
        if type(transform).__name__ == "WeightRenaming" and len(sources or []) == 1 and len(targets or []) == 1:
            renames.append((sources[0], targets[0]))
    return renames


def _loading_name(name: str, renames: list[tuple[str, str]]) -> str:
    import re

    for pattern, replacement in renames:
        renamed = re.sub(pattern, replacement, name)
        if renamed != name:
            return renamed
    return name


def _model_class(config):
    """The class config.json's ``architectures`` names, when transformers has it for this config; else the
    model type's causal language model, image-text-to-text or sequence-to-sequence model, else its bare model
    (an encoder; pp_chart2table names a class of another config)."""
    import transformers

    for name in getattr(config, "architectures", None) or []:
        found = getattr(transformers, name, None) if isinstance(name, str) and name.isidentifier() else None
        is_model = isinstance(found, type) and issubclass(found, transformers.PreTrainedModel)
        if is_model and isinstance(config, found.config_class):
            return found
    autos = ("AutoModelForCausalLM", "AutoModelForImageTextToText", "AutoModelForSeq2SeqLM", "AutoModel")
    for auto in (getattr(transformers, name) for name in autos if hasattr(transformers, name)):
        if type(config) in auto._model_mapping:
            return auto._model_mapping[type(config)]
    raise ValueError(f"no model class for {type(config).__name__}")
