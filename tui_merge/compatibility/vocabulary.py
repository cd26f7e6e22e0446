"""Findings about the vocabularies: row counts that differ (truncate, pad or union) and tokens at other ids."""

from __future__ import annotations

from tui_merge.compatibility.findings import Finding, Fix, differing, listing
from tui_merge.errors import TuiMergeError
from tui_merge.models.info import ModelInfo
from tui_merge.vocab.alignment import align_by_token, union_tokens
from tui_merge.vocab.tokenizer import tokenizer_facts


def vocab(base: ModelInfo, others: list[ModelInfo], method: str | None) -> list[Finding]:
    """Row counts that differ (truncate, pad or union to choose), else tokens at other ids."""
    differ = differing(base, others, lambda model: model.vocab_rows)
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
            f"Vocabulary sizes differ ({listing(base, differ, lambda model: model.vocab_rows)}); "
            "choose truncate, pad or union.",
            tuple(model.label for model in [base, *differ]),
            fixes,
        )
    ]


def _union_summary(base: ModelInfo, others: list[ModelInfo]) -> str:
    """What the union would do: its size and, per model, how many rows it lacks."""
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
