"""Findings about whether the models' tensors can be combined: architecture, widths, depth, each tensor's
shape, stored dtypes and tied heads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tui_merge.compatibility.findings import EXAMPLES, Finding, differing, listing
from tui_merge.models.info import ModelInfo

LAYER_STACKING_METHODS = frozenset({"passthrough"})
"""Methods that take whole layers from one model and so accept models of different depth."""

SHAPE_BREAKING = frozenset({"architecture", "hidden_size", "attention_heads", "kv_heads"})
"""Findings after which comparing tensor by tensor says nothing new."""


def architecture(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    """Models of another architecture (model type or class) than the base."""
    differ = differing(base, others, lambda model: (model.facts.model_type, model.facts.architectures))
    if not differ:
        return []

    def describe(model: ModelInfo) -> str:
        return "/".join(filter(None, [model.facts.model_type, *model.facts.architectures])) or "unknown"

    return [
        Finding(
            "architecture",
            "error",
            f"Architectures differ ({listing(base, differ, describe)}); only models of one architecture can be merged.",
            tuple(model.label for model in [base, *differ]),
        )
    ]


def same_width(code: str, title: str, attribute: str) -> Callable[..., list[Finding]]:
    """A check that a config width (``attribute``) is the same in every model."""

    def check(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
        def value(model: ModelInfo) -> Any:
            return getattr(model.facts, attribute)

        differ = differing(base, others, value)
        if not differ:
            return []
        return [
            Finding(
                code,
                "error",
                f"{title} differ ({listing(base, differ, value)}); tensors of different shapes cannot be merged.",
                tuple(model.label for model in [base, *differ]),
            )
        ]

    return check


def depth(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    """Depths that differ: fine for layer stacking, an error for every other method."""
    differ = differing(base, others, lambda model: model.depth)
    if not differ:
        return []
    depths = listing(base, differ, lambda model: f"{model.depth} layers")
    labels = tuple(model.label for model in [base, *differ])
    if method in LAYER_STACKING_METHODS:
        return [Finding("depth", "info", f"Depths differ ({depths}); {method} stacks layers, so that is fine.", labels)]
    return [
        Finding(
            "depth",
            "error",
            f"Depths differ ({depths}); only layer stacking (passthrough with slices) can combine them.",
            labels,
        )
    ]


def dtype(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    """Stored dtypes that differ (worth knowing: the merge computes in float32)."""
    differ = differing(base, others, lambda model: model.weight_dtype)
    if not differ:
        return []
    return [
        Finding(
            "dtype",
            "info",
            f"Stored dtypes differ ({listing(base, differ, lambda model: model.weight_dtype)}); merging computes "
            "in float32 and writes the output dtype you choose.",
            tuple(model.label for model in [base, *differ]),
        )
    ]


def tied_embeddings(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    """One model ties its head to its embeddings, another does not."""
    differ = differing(base, others, lambda model: model.facts.tie_word_embeddings)
    if not differ:
        return []
    heads = listing(base, differ, lambda model: "tied" if model.facts.tie_word_embeddings else "separate")
    return [
        Finding(
            "tied_embeddings",
            "warning",
            f"Output heads differ ({heads}); a tied model's head is its embedding matrix, which is used in its place.",
            tuple(model.label for model in [base, *differ]),
        )
    ]


def tensor_shapes(base: ModelInfo, others: list[ModelInfo]) -> list[Finding]:
    """Tensors shaped unlike the base's, and tensors only some models have."""
    findings = []
    for model in others:
        mismatched = [
            name
            for name, entry in base.tensors.items()
            if name in model.tensors
            and model.tensors[name].shape != entry.shape
            and not _differs_only_in_vocab(base, model, name)
        ]
        if mismatched:
            examples = ", ".join(
                f"{name} {list(base.tensors[name].shape)} vs {list(model.tensors[name].shape)}"
                for name in mismatched[:EXAMPLES]
            )
            findings.append(
                Finding(
                    "tensor_shapes",
                    "error",
                    f"{model.label} has {len(mismatched)} tensors shaped unlike {base.label}'s ({examples}); "
                    "its weights do not match its config or it is another architecture.",
                    (base.label, model.label),
                )
            )
        missing = sorted(_comparable_names(base, model) - set(model.tensors))
        extra = sorted(_comparable_names(model, base) - set(base.tensors))
        for absent, present, names in ((model, base, missing), (base, model, extra)):
            if names:
                findings.append(
                    Finding(
                        "missing_tensors",
                        "warning",
                        f"{absent.label} lacks {len(names)} tensors that {present.label} has "
                        f"(e.g. {', '.join(names[:EXAMPLES])}); they will be taken from the models that have them.",
                        (absent.label, present.label),
                    )
                )
    return findings


def _differs_only_in_vocab(base: ModelInfo, model: ModelInfo, name: str) -> bool:
    ours, theirs = base.tensors[name].shape, model.tensors[name].shape
    return (
        len(ours) == len(theirs)
        and ours[1:] == theirs[1:]
        and (ours[0], theirs[0]) == (base.vocab_rows, model.vocab_rows)
    )


def _comparable_names(model: ModelInfo, other: ModelInfo) -> set[str]:
    # Layers beyond the shallower model's depth are reported by the depth check,
    # and a head that only one model stores by the tied-embeddings check.
    depth = min(model.depth, other.depth)
    tied_differ = model.facts.tie_word_embeddings != other.facts.tie_word_embeddings
    return {
        name
        for name, role in model.roles.items()
        if (role.layer is None or role.layer < depth) and not (tied_differ and role.component == "head")
    }
