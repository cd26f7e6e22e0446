"""``check_compatibility``: every family's findings about a set of models, most severe first."""

from __future__ import annotations

from tui_merge.compatibility.each_model import repeated, single_model, tokenizer
from tui_merge.compatibility.findings import SEVERITIES, CompatibilityReport, Finding, PairCheck
from tui_merge.compatibility.lineage import generation, lineage
from tui_merge.compatibility.shapes import (
    SHAPE_BREAKING,
    architecture,
    depth,
    dtype,
    same_width,
    tensor_shapes,
    tied_embeddings,
)
from tui_merge.compatibility.vocabulary import vocab
from tui_merge.models.info import ModelInfo

_PAIR_CHECKS: tuple[PairCheck, ...] = (
    architecture,
    same_width("hidden_size", "Hidden sizes", "hidden_size"),
    same_width("attention_heads", "Attention head counts", "num_heads"),
    same_width("kv_heads", "Key/value head counts", "num_kv_heads"),
    depth,
    vocab,
    dtype,
    tied_embeddings,
    generation,
)


def check_compatibility(
    models: list[ModelInfo], base: ModelInfo | None = None, method: str | None = None
) -> CompatibilityReport:
    """Compare every model with the base and return all findings, most severe first."""
    base = base or models[0]
    others = [model for model in models if model is not base]
    findings: list[Finding] = []
    for model in models:
        findings += single_model(model)
        findings += tokenizer(model)
    findings += repeated(models)
    for check in _PAIR_CHECKS:
        findings += check(base, others, method)
    if not any(finding.code in SHAPE_BREAKING for finding in findings):
        findings += tensor_shapes(base, others)
        findings += lineage(base, others)
    findings.sort(key=lambda finding: SEVERITIES.index(finding.severity))
    return CompatibilityReport(models=models, base=base, findings=findings)
