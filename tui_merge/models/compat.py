"""Can these models be merged? Findings computed from headers and one probe tensor, in seconds.

Each finding has a severity: ``error`` blocks the merge (the result would be
wrong or cannot be built), ``warning`` needs a decision or deserves a look,
``info`` is worth knowing. Warnings that have remedies list them as fixes,
which the wizard offers as choices and a config selects by key.

Every model is compared with the base: the one marked as base, else the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tui_merge.errors import TuiMergeError
from tui_merge.models.architecture_fit import built_exactly, rows_as_built
from tui_merge.models.info import ModelInfo
from tui_merge.models.lineage import SAME_BASE_THRESHOLD, UNRELATED_THRESHOLD, compare_lineage, probe_tensor_names

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

LAYER_STACKING_METHODS = frozenset({"passthrough"})
"""Methods that take whole layers from one model and so accept models of different depth."""

_EXAMPLES = 3


@dataclass(frozen=True)
class Fix:
    """One way to resolve a finding."""

    key: str
    """The value a config uses to choose this fix, e.g. ``pad``."""
    summary: str
    """What choosing it would do to these models."""


@dataclass(frozen=True)
class Finding:
    """One thing the user should know before merging."""

    code: str
    """Stable identifier, e.g. ``vocab_size`` or ``lineage``."""
    severity: Severity
    message: str
    models: tuple[str, ...] = ()
    """Labels of the models concerned."""
    fixes: tuple[Fix, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "models": list(self.models),
            "fixes": [{"key": fix.key, "summary": fix.summary} for fix in self.fixes],
        }


@dataclass(frozen=True)
class CompatibilityReport:
    """The findings about one set of models."""

    models: list[ModelInfo]
    base: ModelInfo
    findings: list[Finding] = field(default_factory=list)

    @property
    def mergeable(self) -> bool:
        """True when no finding is an error."""
        return not any(finding.severity == "error" for finding in self.findings)


def check_compatibility(
    models: list[ModelInfo], base: ModelInfo | None = None, method: str | None = None
) -> CompatibilityReport:
    """Compare every model with the base and return all findings, most severe first."""
    base = base or models[0]
    others = [model for model in models if model is not base]
    findings: list[Finding] = []
    for model in models:
        findings += _single_model(model)
        findings += _tokenizer(model)
    findings += _repeated(models)
    for check in _PAIR_CHECKS:
        findings += check(base, others, method)
    if not any(finding.code in _SHAPE_BREAKING for finding in findings):
        findings += _tensor_shapes(base, others)
        findings += _lineage(base, others)
    findings.sort(key=lambda finding: SEVERITIES.index(finding.severity))
    return CompatibilityReport(models=models, base=base, findings=findings)


def _repeated(models: list[ModelInfo]) -> list[Finding]:
    """The same model given twice: said, since a merge refuses it (``engine.prepare``)."""
    from tui_merge.models.info import repeated_model, same_model_sentence

    repeated = repeated_model([(model.source.argument, model) for model in models])
    if repeated is None:
        return []
    return [Finding("same_model", "warning", same_model_sentence(*repeated), (repeated[0], repeated[1]))]


def _single_model(model: ModelInfo) -> list[Finding]:
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


def _tokenizer(model: ModelInfo) -> list[Finding]:
    """A tokenizer that cannot be read (damaged files, ids far beyond its tokens) stops the merge that reads it."""
    from tui_merge.vocab.tokenizer import has_tokenizer, tokenizer_facts

    if not has_tokenizer(model.folder):
        return []
    try:
        tokenizer_facts(model.folder)
    except TuiMergeError as error:
        return [Finding("tokenizer", "error", f"{model.label}: {error.message}", (model.label,))]
    return []


def _differing(base: ModelInfo, others: list[ModelInfo], value: Callable[[ModelInfo], Any]) -> list[ModelInfo]:
    return [model for model in others if value(model) != value(base)]


def _listing(base: ModelInfo, models: list[ModelInfo], value: Callable[[ModelInfo], Any]) -> str:
    return ", ".join(f"{model.label}: {value(model)}" for model in [base, *models])


def _architecture(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    differ = _differing(base, others, lambda model: (model.facts.model_type, model.facts.architectures))
    if not differ:
        return []

    def describe(model: ModelInfo) -> str:
        return "/".join(filter(None, [model.facts.model_type, *model.facts.architectures])) or "unknown"

    return [
        Finding(
            "architecture",
            "error",
            f"Architectures differ ({_listing(base, differ, describe)}); "
            "only models of one architecture can be merged.",
            tuple(model.label for model in [base, *differ]),
        )
    ]


def _same_width(code: str, title: str, attribute: str) -> Callable[..., list[Finding]]:
    def check(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
        def value(model: ModelInfo) -> Any:
            return getattr(model.facts, attribute)

        differ = _differing(base, others, value)
        if not differ:
            return []
        return [
            Finding(
                code,
                "error",
                f"{title} differ ({_listing(base, differ, value)}); tensors of different shapes cannot be merged.",
                tuple(model.label for model in [base, *differ]),
            )
        ]

    return check


def _depth(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    differ = _differing(base, others, lambda model: model.depth)
    if not differ:
        return []
    listing = _listing(base, differ, lambda model: f"{model.depth} layers")
    labels = tuple(model.label for model in [base, *differ])
    if method in LAYER_STACKING_METHODS:
        return [
            Finding("depth", "info", f"Depths differ ({listing}); {method} stacks layers, so that is fine.", labels)
        ]
    return [
        Finding(
            "depth",
            "error",
            f"Depths differ ({listing}); only layer stacking (passthrough with slices) can combine them.",
            labels,
        )
    ]


def _vocab(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    differ = _differing(base, others, lambda model: model.vocab_rows)
    if not differ:
        return _token_order(base, others)
    rows = {model.label: model.vocab_rows or 0 for model in [base, *others]}
    base_rows, largest = rows[base.label], max(rows.values())
    cut = [f"{count - base_rows} rows of {label}" for label, count in rows.items() if count > base_rows]
    grow = [f"{largest - count} new rows for {label} from its mean" for label, count in rows.items() if count < largest]
    fixes = (
        Fix("truncate", f"cut to the base's {base_rows} rows" + (f", dropping {', '.join(cut)}" if cut else "")),
        Fix("pad", f"grow to {largest} rows: {'; '.join(grow)}"),
        Fix("union", _union_summary(base, others)),
    )
    return [
        Finding(
            "vocab_size",
            "warning",
            f"Vocabulary sizes differ ({_listing(base, differ, lambda model: model.vocab_rows)}); "
            "choose truncate, pad or union.",
            tuple(model.label for model in [base, *differ]),
            fixes,
        )
    ]


def _union_summary(base: ModelInfo, others: list[ModelInfo]) -> str:
    """What the union would do: its size and, per model, how many rows it lacks."""
    from tui_merge.vocab.alignment import align_by_token, union_tokens
    from tui_merge.vocab.tokenizer import tokenizer_facts

    models = [base, *others]
    try:
        vocabularies = {model.label: tokenizer_facts(model.folder) for model in models}
    except TuiMergeError as error:
        return f"not possible here: {error.message[:1].lower()}{error.message[1:]}"
    lacking = [label for label, facts in vocabularies.items() if facts is None]
    if lacking:
        return f"not possible here: it matches rows by token and {', '.join(lacking)} has no tokenizer"
    tokens, added = union_tokens(vocabularies[base.label], [vocabularies[model.label] for model in others])
    rows = {model.label: model.vocab_rows or 0 for model in models}
    alignment = align_by_token(tokens, vocabularies, rows, positional=base.label, base=base.label)
    lacks = [f"{label} lacks {alignment.missing(label)}" for label in rows if alignment.missing(label)]
    extended = f" plus {len(added)} tokens" if added else ""
    text = f"{base.label}'s tokenizer{extended}, {alignment.rows} rows matched by token"
    return text + (f"; {', '.join(lacks)} (filled from the base, else the models that have them)" if lacks else "")


def _token_order(base: ModelInfo, others: list[ModelInfo]) -> list[Finding]:
    """Same sizes, but tokens at other ids: merging row by row would mix different tokens."""
    from tui_merge.vocab.tokenizer import tokenizer_facts

    try:
        reference = tokenizer_facts(base.folder)
        moved = {}
        for model in others:
            facts = tokenizer_facts(model.folder) if reference is not None else None
            if facts is not None:
                count = sum(1 for token, index in facts.ids.items() if reference.ids.get(token, index) != index)
                if count:
                    moved[model.label] = count
    except TuiMergeError:
        return []
    if not moved:
        return []
    listing = ", ".join(f"{count} in {label}" for label, count in moved.items())
    return [
        Finding(
            "token_order",
            "warning",
            f"The vocabularies have the same size but tokens sit at other ids than in {base.label} ({listing}); "
            "rows merge by position unless you choose union.",
            (base.label, *moved),
            (Fix("union", _union_summary(base, others)),),
        )
    ]


def _dtype(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    differ = _differing(base, others, lambda model: model.weight_dtype)
    if not differ:
        return []
    return [
        Finding(
            "dtype",
            "info",
            f"Stored dtypes differ ({_listing(base, differ, lambda model: model.weight_dtype)}); merging computes "
            "in float32 and writes the output dtype you choose.",
            tuple(model.label for model in [base, *differ]),
        )
    ]


def _tied_embeddings(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    differ = _differing(base, others, lambda model: model.facts.tie_word_embeddings)
    if not differ:
        return []
    listing = _listing(base, differ, lambda model: "tied" if model.facts.tie_word_embeddings else "separate")
    return [
        Finding(
            "tied_embeddings",
            "warning",
            f"Output heads differ ({listing}); "
            "a tied model's head is its embedding matrix, which is used in its place.",
            tuple(model.label for model in [base, *differ]),
        )
    ]


def _generation(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    findings = []
    for attribute, title in (("max_positions", "Context lengths"), ("rope_theta", "RoPE bases (rope_theta)")):

        def value(model: ModelInfo, attribute: str = attribute) -> Any:
            return getattr(model.facts, attribute)

        differ = _differing(base, others, value)
        if differ:
            findings.append(
                Finding(
                    f"pretraining_{attribute}",
                    "warning",
                    f"{title} differ ({_listing(base, differ, value)}); the models may come from different "
                    "pretraining generations (like Llama 1 and Llama 2) or a context extension.",
                    tuple(model.label for model in [base, *differ]),
                )
            )
    return findings


_PAIR_CHECKS = (
    _architecture,
    _same_width("hidden_size", "Hidden sizes", "hidden_size"),
    _same_width("attention_heads", "Attention head counts", "num_heads"),
    _same_width("kv_heads", "Key/value head counts", "num_kv_heads"),
    _depth,
    _vocab,
    _dtype,
    _tied_embeddings,
    _generation,
)
_SHAPE_BREAKING = frozenset({"architecture", "hidden_size", "attention_heads", "kv_heads"})


def _tensor_shapes(base: ModelInfo, others: list[ModelInfo]) -> list[Finding]:
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
                for name in mismatched[:_EXAMPLES]
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
                        f"(e.g. {', '.join(names[:_EXAMPLES])}); they will be taken from the models that have them.",
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


def _lineage(base: ModelInfo, others: list[ModelInfo]) -> list[Finding]:
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
