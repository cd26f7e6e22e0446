"""Findings about each model on its own: weights it cannot be read from, a config that does not describe
them, a tokenizer that cannot be read, and the same model given twice."""

from __future__ import annotations

from tui_merge.compatibility.findings import Finding
from tui_merge.errors import TuiMergeError
from tui_merge.models.architecture_fit import built_exactly, rows_as_built
from tui_merge.models.info import ModelInfo, repeated_model, same_model_sentence
from tui_merge.vocab.tokenizer import has_tokenizer, tokenizer_facts


def repeated(models: list[ModelInfo]) -> list[Finding]:
    """The same model given twice: said, since a merge refuses it (``engine.prepare``)."""
    repeated = repeated_model([(model.source.argument, model) for model in models])
    if repeated is None:
        return []
    return [Finding("same_model", "warning", same_model_sentence(*repeated), (repeated[0], repeated[1]))]


def single_model(model: ModelInfo) -> list[Finding]:
    """Unreadable quantized weights, and a config whose depth or vocabulary the weights contradict."""
    findings = []
    if model.quantization is not None and not model.quantization.readable:
        findings.append(Finding("quantized", "error", model.quantization.refusal(model.label), (model.label,)))
    declared = model.facts.num_layers
    if declared is not None and model.depth and declared != model.depth and not built_exactly(model):
        findings.append(
            Finding(
                "config_depth",
                "error",
                f"{model.label}: config.json says {declared} layers but the weights hold {model.depth} blocks; "
                "the download is incomplete or the config belongs to another model.",
                (model.label,),
            )
        )
    if model.facts.vocab_size is not None and model.vocab_rows != model.facts.vocab_size and not rows_as_built(model):
        findings.append(
            Finding(
                "config_vocab",
                "error",
                f"{model.label}: config.json says vocab_size {model.facts.vocab_size} but the embedding has "
                f"{model.vocab_rows} rows, so transformers cannot load it; the download is incomplete or the "
                "config belongs to another model.",
                (model.label,),
            )
        )
    return findings


def tokenizer(model: ModelInfo) -> list[Finding]:
    """A tokenizer that cannot be read (damaged files, ids far beyond its tokens) stops the merge that reads it."""
    if not has_tokenizer(model.folder):
        return []
    try:
        tokenizer_facts(model.folder)
    except TuiMergeError as error:
        return [Finding("tokenizer", "error", f"{model.label}: {error.message}", (model.label,))]
    return []
