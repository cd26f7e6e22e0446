"""Decide, before anything is written, how vocabularies are reconciled and which tokenizer the output gets.

Strategies:

- ``tui_merge.vocab: truncate``: every vocabulary matrix is cut to the base
  model's rows (the smallest when there is no base); rows match by position.
- ``tui_merge.vocab: pad``: every matrix grows to the largest, new rows being
  the mean row of its own matrix; rows match by position.
- ``tui_merge.vocab: union`` (or mergekit's ``tokenizer_source: union``): the
  output tokenizer is the base's (else the first model's) plus every token
  another model adds; rows match by token (see ``alignment``).
- mergekit's ``tokenizer_source: base`` or ``model:<path>`` alone: the output
  uses that tokenizer and rows match by token to it, when the vocabularies
  differ at all.

With none of these and different sizes, the plan fails with the sizes and
the three fixes. The output tokenizer comes from ``tokenizer_source``, else
from the model that ships a ``special_tokens_map.json``, else the base, else
the first model; it must not produce an id past the output's rows (a
tokenizer larger than its embedding breaks conversion to GGUF and crashes
at inference), which is checked here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tui_merge.config.loading import LoadedConfig
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo
from tui_merge.models.resolve import resolve_model
from tui_merge.vocab.alignment import VocabAlignment, align_by_token, union_tokens
from tui_merge.vocab.output import union_tokenizer
from tui_merge.vocab.tokenizer import AddedToken, TokenizerFacts, has_tokenizer, tokenizer_facts


@dataclass(frozen=True)
class OutputTokenizer:
    """The tokenizer written next to the merged weights."""

    source: Path
    """Folder whose tokenizer files are copied (for a union: the tokenizer it extends)."""
    added: tuple[AddedToken, ...] = ()
    """Tokens a union adds to the source tokenizer, in id order after it."""
    special_ids: dict[str, int] = field(default_factory=dict)
    """Ids of bos / eos / pad / unk, which config.json and generation_config.json must repeat."""
    size: int = 0
    """Ids the output tokenizer produces."""


@dataclass(frozen=True)
class VocabPlan:
    """How vocabulary-shaped tensors are fitted, and the output tokenizer."""

    strategy: str | None
    """``truncate``, ``pad`` (by position), ``union`` or ``tokens`` (by token), or None when all agree."""
    rows: int | None
    """Rows of every vocabulary matrix in the output (None: as the models have them)."""
    alignment: VocabAlignment | None = None
    tokenizer: OutputTokenizer | None = None
    notes: tuple[str, ...] = ()
    """Things the user should read in the run log."""


def plan_vocabulary(loaded: LoadedConfig, models: dict[str, ModelInfo]) -> VocabPlan:
    """The vocabulary plan for a config over its inspected models (keyed by config name)."""
    config = loaded.config
    options = config.tui_merge
    source = config.tokenizer_source
    names = config.referenced_models()
    base = config.base_model
    first = base or names[0]
    rows = {name: models[name].vocab_rows for name in names}
    if any(count is None for count in rows.values()):
        return VocabPlan(None, None, tokenizer=_output_tokenizer(loaded, models, None, ()))
    if options.vocab == "union" and source not in (None, "union", "base"):
        raise BadInputError(
            f"{loaded.where(('tokenizer_source',))}: a union vocabulary extends the base's tokenizer, so "
            f"tokenizer_source {source} contradicts tui_merge.vocab: union; remove one of them."
        )
    by_token = options.vocab == "union" or (options.vocab is None and source is not None)
    if by_token:
        plan = _by_token(loaded, models, rows, first)
        if plan is not None:
            return plan
    sizes = set(rows.values())
    if options.vocab == "truncate":
        output_rows = rows[base] if base else min(sizes)
    elif options.vocab == "pad":
        output_rows = max(sizes)
    elif len(sizes) > 1:
        listing = ", ".join(f"{models[name].label} has {count}" for name, count in rows.items())
        raise BadInputError(
            f"Vocabulary sizes differ ({listing} rows); add tui_merge: {{vocab: truncate}} (cut to the base's "
            "rows), {vocab: pad} (grow to the largest with mean rows) or {vocab: union} (merge the tokenizers "
            f"and match rows by token) to {loaded.source}."
        )
    else:
        output_rows = sizes.pop()
    strategy = options.vocab if len(set(rows.values())) > 1 else None
    tokenizer = _output_tokenizer(loaded, models, None, ())
    _check_fits(tokenizer, output_rows, loaded)
    return VocabPlan(strategy, output_rows, tokenizer=tokenizer, notes=_order_notes(models, names, first))


def _by_token(loaded: LoadedConfig, models: dict[str, ModelInfo], rows: dict[str, int], first: str) -> VocabPlan | None:
    config = loaded.config
    vocabularies = {}
    for name in rows:
        facts = tokenizer_facts(models[name].folder)
        if facts is None:
            raise BadInputError(
                f"Matching rows by token needs every model's tokenizer, and {models[name].label} has none in "
                f"{models[name].folder}; use tui_merge: {{vocab: truncate}} or {{vocab: pad}} instead."
            )
        vocabularies[name] = facts
    union = config.tui_merge.vocab == "union" or config.tokenizer_source == "union"
    if union:
        target_name = first
        tokens, added = union_tokens(vocabularies[first], [vocabularies[name] for name in rows if name != first])
        target = vocabularies[first]
    else:
        target_name, target = _named_tokenizer(loaded, models, first)
        tokens, added = target.by_id(), []
    positional = target_name if target_name in rows else None
    alignment = align_by_token(tokens, vocabularies, rows, positional=positional, base=config.base_model)
    if alignment.is_identity(rows) and not added:
        return None  # the vocabularies already agree row for row: nothing to rearrange
    tokenizer = _output_tokenizer(loaded, models, target.folder, tuple(added))
    _check_fits(tokenizer, alignment.rows, loaded)
    if tokenizer is not None and added:
        union_tokenizer(target.folder, tuple(added))  # fails here, not after the merge, if ids would not match
    notes = [
        f"{models[name].label}: {alignment.missing(name)} of {alignment.rows} rows filled (token not in its tokenizer)"
        for name in rows
        if alignment.missing(name)
    ]
    if added:
        notes.insert(0, f"union tokenizer: {target.folder.name}'s with {len(added)} tokens added")
    return VocabPlan("union" if union else "tokens", alignment.rows, alignment, tokenizer, tuple(notes))


def _named_tokenizer(loaded: LoadedConfig, models: dict[str, ModelInfo], first: str) -> tuple[str, TokenizerFacts]:
    source = loaded.config.tokenizer_source or "base"
    name = first if source == "base" else source.removeprefix("model:")
    folder = models[name].folder if name in models else resolve_model(name).folder
    facts = tokenizer_facts(folder)
    if facts is None:
        raise BadInputError(
            f"{loaded.where(('tokenizer_source',))}: {folder} has no tokenizer files; name a model that has one."
        )
    return name, facts


def _output_tokenizer(
    loaded: LoadedConfig, models: dict[str, ModelInfo], folder: Path | None, added: tuple[AddedToken, ...]
) -> OutputTokenizer | None:
    config = loaded.config
    if folder is None:
        folder = _default_tokenizer_folder(loaded, models)
    if folder is None or not config.tui_merge.copy_tokenizer:
        return None
    facts = tokenizer_facts(folder)
    if facts is None:
        return None
    return OutputTokenizer(folder, added, dict(facts.special_ids), facts.size + len(added))


def _default_tokenizer_folder(loaded: LoadedConfig, models: dict[str, ModelInfo]) -> Path | None:
    config = loaded.config
    source = config.tokenizer_source
    names = config.referenced_models()
    first = config.base_model or names[0]
    if source and source.startswith("model:"):
        return _named_tokenizer(loaded, models, first)[1].folder
    if source in ("base", "union"):
        return models[first].folder
    with_map = [name for name in names if (models[name].folder / "special_tokens_map.json").is_file()]
    preferred = [*sorted(with_map, key=lambda name: name != first), first, *names]
    return next((models[name].folder for name in preferred if has_tokenizer(models[name].folder)), None)


def _check_fits(tokenizer: OutputTokenizer | None, rows: int, loaded: LoadedConfig) -> None:
    if tokenizer is not None and tokenizer.size > rows:
        raise BadInputError(
            f"The output tokenizer (from {tokenizer.source}) has token ids up to {tokenizer.size - 1}, but the "
            f"merged embedding has only {rows} rows; in {loaded.source} set tokenizer_source to a model whose "
            "tokenizer fits, or use tui_merge: {vocab: pad} or {vocab: union}."
        )


def _order_notes(models: dict[str, ModelInfo], names: list[str], first: str) -> tuple[str, ...]:
    """A warning per model whose shared tokens sit at other ids than in the first model (rows merge by position)."""
    reference = tokenizer_facts(models[first].folder) if has_tokenizer(models[first].folder) else None
    if reference is None:
        return ()
    notes = []
    for name in names:
        facts = tokenizer_facts(models[name].folder) if name != first else None
        if facts is None:
            continue
        moved = sum(1 for token, index in facts.ids.items() if reference.ids.get(token, index) != index)
        if moved:
            notes.append(
                f"{models[name].label}: {moved} tokens sit at other ids than in {models[first].label}, and rows "
                "merge by position; tokenizer_source: union (or base) merges them by token."
            )
    return tuple(notes)
