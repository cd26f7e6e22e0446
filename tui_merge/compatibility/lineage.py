"""Findings about where the models come from: a shared base (one probe tensor's cosine similarity) and one
pretraining generation (context length, RoPE base)."""

from __future__ import annotations

from typing import Any

from tui_merge.compatibility.findings import Finding, differing, listing
from tui_merge.models.info import ModelInfo
from tui_merge.models.lineage import SAME_BASE_THRESHOLD, UNRELATED_THRESHOLD, compare_lineage, probe_tensor_names


def generation(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    """Context lengths or RoPE bases that differ: perhaps another pretraining generation."""
    findings = []
    for attribute, title in (("max_positions", "Context lengths"), ("rope_theta", "RoPE bases (rope_theta)")):

        def value(model: ModelInfo, attribute: str = attribute) -> Any:
            return getattr(model.facts, attribute)

        differ = differing(base, others, value)
        if differ:
            findings.append(
                Finding(
                    f"pretraining_{attribute}",
                    "warning",
                    f"{title} differ ({listing(base, differ, value)}); the models may come from different "
                    "pretraining generations (like Llama 1 and Llama 2) or a context extension.",
                    tuple(model.label for model in [base, *differ]),
                )
            )
    return findings


def lineage(base: ModelInfo, others: list[ModelInfo]) -> list[Finding]:
    """Each model's kinship with the base, from the cosine similarity of one probe tensor."""
    if not others:
        return []
    tensors = probe_tensor_names([base, *others])
    if not tensors:
        return [Finding("lineage", "info", "No shared matrix in a block to compare lineage with.")]
    findings = []
    for model in others:
        probe = compare_lineage(base, model, tensors)
        labels = (base.label, model.label)
        if probe.similarity is None:
            findings.append(
                Finding(
                    "lineage",
                    "warning",
                    f"{model.label}: {', '.join(tensors)} hold one value throughout (zeros, ones) here or in the "
                    "base; lineage cannot be checked.",
                    labels,
                )  # fmt: skip
            )
            continue
        measured = f"cosine similarity {probe.similarity:.3f} of {probe.tensor}"
        if probe.similarity >= SAME_BASE_THRESHOLD:
            findings.append(
                Finding("lineage", "info", f"{model.label} shares a base with {base.label} ({measured}).", labels)
            )
        elif probe.similarity >= UNRELATED_THRESHOLD:
            findings.append(
                Finding(
                    "lineage",
                    "warning",
                    f"{model.label} is a distant relative of {base.label} ({measured}): a long continued "
                    "pretraining or another version of the base; expect a weaker merge.",
                    labels,
                )
            )
        else:
            findings.append(
                Finding(
                    "lineage",
                    "error",
                    f"{model.label} and {base.label} do not share a base ({measured}); merging them produces noise.",
                    labels,
                )
            )
    return findings
