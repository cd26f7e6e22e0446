"""Where a tensor sits in a transformer: its layer index and its component.

Every merge method and the wizard's layer table work per layer and per
component, so each tensor name is classified into a layer index (``None`` for
tensors outside the numbered blocks) and one of the components below.

Families differ mostly in the names of the numbered block container
(``model.layers``, ``transformer.h``, ``bert.encoder.layer``...) and in a few
sub-module names. One keyword table covers what they share; a small table per
family covers the rest, and it is consulted first. Unknown families fall back
to the first ``.<n>.`` in the name, so the numbered blocks of a new
architecture are still found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Component = Literal["embed", "attn", "mlp", "norm", "head", "other"]
COMPONENTS: tuple[Component, ...] = ("embed", "attn", "mlp", "norm", "head", "other")


@dataclass(frozen=True)
class TensorRole:
    """The place of one tensor in the model."""

    layer: int | None
    """Index of the numbered block the tensor belongs to, or None outside blocks."""
    component: Component
    """What the tensor is part of."""
    block_prefix: str | None
    """Name prefix of the block container, e.g. ``model.layers``; None outside blocks."""


@dataclass(frozen=True)
class FamilyLayout:
    """Naming rules that one family of architectures needs beyond the shared ones."""

    family: str
    model_types: tuple[str, ...]
    rules: tuple[tuple[re.Pattern[str], Component], ...] = ()
    """Checked before the shared rules, against the name after the block index."""


def _rules(*pairs: tuple[str, Component]) -> tuple[tuple[re.Pattern[str], Component], ...]:
    return tuple((re.compile(pattern), component) for pattern, component in pairs)


# Known block containers, matched at the end of the prefix before the index.
_KNOWN_BLOCK = re.compile(r"^(?P<prefix>(?:.+?\.)?(?:layers|layer|h|blocks|block))\.(?P<index>\d+)\.(?P<rest>.+)$")
# Fallback for unknown families: the first ``.<n>.`` in the name.
_ANY_BLOCK = re.compile(r"^(?P<prefix>.+?)\.(?P<index>\d+)\.(?P<rest>.+)$")

# Output heads live outside the numbered blocks, and they are checked first
# so that a head's own LayerNorm (bert's ``cls.predictions.transform.LayerNorm``)
# stays with the head.
_HEAD_RULES = _rules(
    (r"(^|\.)(lm_head|embed_out|output_layer)(\.|$)|^cls\.|(^|\.)score\.weight$", "head"),
    (r"^output\.weight$", "head"),
)
# Shared rules, first match wins: norms come before attention so that
# ``post_attention_layernorm`` is a norm, not attention.
_SHARED_RULES = _rules(
    (r"(?i)(norm|(^|\.|_)ln(_?\w+)?\.)", "norm"),
    (r"(^|\.|_)(embed\w*|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings)\.|^shared\.", "embed"),
    (r"(attn|attention|(^|\.)(q|k|v|o|qkv|query|key|value)(_proj)?\.)", "attn"),
    (
        r"(mlp|ffn|feed_forward|experts|(^|\.)(fc\d|fc_in|fc_out|c_fc|gate_proj|up_proj|down_proj"
        r"|gate_up_proj|dense_h_to_4h|dense_4h_to_h|w1|w2|w3|intermediate)\.)",
        "mlp",
    ),
)

FAMILY_LAYOUTS: tuple[FamilyLayout, ...] = (
    FamilyLayout("llama", ("llama",)),
    FamilyLayout("mistral", ("mistral", "mixtral")),
    FamilyLayout("qwen2", ("qwen2", "qwen2_moe", "qwen3")),
    FamilyLayout("gemma", ("gemma", "gemma2", "gemma3_text")),
    FamilyLayout("phi3", ("phi3", "phi")),
    FamilyLayout("gpt2", ("gpt2",)),
    FamilyLayout("gptj", ("gptj",)),
    FamilyLayout("gpt_neox", ("gpt_neox",)),
    FamilyLayout("opt", ("opt",)),
    FamilyLayout("falcon", ("falcon",)),
    # bert's feed-forward output is ``layer.N.output.dense``, a name with no
    # mlp keyword; its attention output is ``attention.output.dense``.
    FamilyLayout("bert", ("bert", "roberta"), _rules((r"^output\.dense\.", "mlp"))),
)

_GENERIC = FamilyLayout("generic", ())


def family_layout(model_type: str | None) -> FamilyLayout:
    """Return the layout rules for a ``config.json`` model_type (generic if unknown)."""
    for layout in FAMILY_LAYOUTS:
        if model_type in layout.model_types:
            return layout
    return _GENERIC


def classify_tensor(name: str, layout: FamilyLayout = _GENERIC) -> TensorRole:
    """Classify one tensor name into its layer index and component."""
    block = _KNOWN_BLOCK.match(name) or _ANY_BLOCK.match(name)
    if block:
        return TensorRole(
            layer=int(block["index"]),
            component=_component(block["rest"], layout, in_block=True),
            block_prefix=block["prefix"],
        )
    return TensorRole(layer=None, component=_component(name, layout, in_block=False), block_prefix=None)


def classify_tensors(names: Iterable[str], layout: FamilyLayout = _GENERIC) -> dict[str, TensorRole]:
    """Classify every tensor of one model, then take back what only looked like a stack.

    A name's first ``.<n>.`` is a guess where no known container name (``layers``, ``h``, ``blocks``) says so.
    Such a guess whose indices leave gaps is an ``nn.Sequential`` of matrices and activations (qwen2_vl's
    ``visual.merger.mlp.0`` and ``.2``, a projector), not a stack of layers: its tensors sit outside the stacks,
    so a gradient never places them past the end of a two-"layer" stack.
    """
    roles = {name: classify_tensor(name, layout) for name in names}
    indices: dict[str, set[int]] = {}
    for name, role in roles.items():
        if role.block_prefix is not None and role.layer is not None and not _KNOWN_BLOCK.match(name):
            indices.setdefault(role.block_prefix, set()).add(role.layer)
    sequential = {prefix for prefix, found in indices.items() if found != set(range(len(found)))}
    for name, role in roles.items():
        if role.block_prefix in sequential:
            roles[name] = TensorRole(layer=None, component=_component(name, layout, in_block=False), block_prefix=None)
    return roles


def _component(name: str, layout: FamilyLayout, *, in_block: bool) -> Component:
    rules = layout.rules + _SHARED_RULES if in_block else _HEAD_RULES + _SHARED_RULES
    for pattern, component in rules:
        if pattern.search(name):
            return component
    return "other"
