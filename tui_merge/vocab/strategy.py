"""Decide, before anything is written, how vocabularies are reconciled and which tokenizer the output gets.

Strategies:

- ``tui_merge.vocab: truncate``: every vocabulary matrix is cut to the base
  model's rows (the smallest when there is no base); rows match by position.
- ``tui_merge.vocab: pad``: every matrix grows to the largest, new rows being
  the mean row of its own matrix; rows match by position.
- ``tui_merge.vocab: union`` (or mergekit's ``tokenizer_source: union``): the
  output tokenizer is the base's (else the first model's) plus every token
  another model adds; rows match by token (see ``alignment``).
- mergekit's ``tokenizer_source: base`` or a model (``./some-model``, a hub
  id, or ``model:<path>``) alone: the output uses that tokenizer and rows
  match by token to it, when the vocabularies differ at all.
- mergekit's ``tokenizer:`` block: ``source`` as above (``union`` when left
  out); rows always match by token; ``tokens`` names where a token's rows
  come from (``alignment.RowOverride``); ``pad_to_multiple_of`` rounds the
  rows up (the padding rows take each model's mean of its rows before them,
  after the fill, in the stored dtype, as mergekit fills them; never zeros).

With none of these and different sizes, the plan fails with the sizes and
the three fixes. The output tokenizer comes from ``tokenizer_source``, else
from the model that ships a ``special_tokens_map.json``, else the base, else
the first model; it must not produce an id past the output's rows (a
tokenizer larger than its embedding breaks conversion to GGUF and crashes
at inference), which is checked here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from tui_merge.config.loading import LoadedConfig
from tui_merge.config.schema import ModelToken, ZeroToken
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo
from tui_merge.models.resolve import resolve_model
from tui_merge.vocab.alignment import RowOverride, VocabAlignment, align_by_token, union_tokens
from tui_merge.vocab.chat_template import resolve_chat_template
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
    chat_template: str | None = None
    """The chat template the config asks for (``chat_template``), written over the source's; None keeps it."""


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
    """The vocabulary plan for a config over its inspected models (keyed by config name), with the chat
    template the config asks for (``vocab.chat_template``)."""
    plan = _plan_rows(loaded, models)
    value = loaded.config.chat_template
    if value is None:
        return plan
    folders = [models[name].folder for name in loaded.config.referenced_models()]
    template, note = resolve_chat_template(value, loaded.where(("chat_template",)), folders)
    if plan.tokenizer is None:
        note = "chat_template is given but the output gets no tokenizer, so it is not written"
    elif template is not None:
        plan = replace(plan, tokenizer=replace(plan.tokenizer, chat_template=template))
    return replace(plan, notes=(*plan.notes, note)) if note else plan


def _plan_rows(loaded: LoadedConfig, models: dict[str, ModelInfo]) -> VocabPlan:
    config = loaded.config
    options = config.tui_merge
    source = config.tokenizer_choice
    names = config.referenced_models()
    base = config.base_model
    first = base or names[0]
    rows = {name: models[name].vocab_rows for name in names}
    if any(count is None for count in rows.values()):
        return VocabPlan(None, None, tokenizer=_output_tokenizer(loaded, models, None, ()))
    if options.vocab == "union" and source not in (None, "union", "base"):
        raise BadInputError(
            f"{loaded.where(source_key(config))}: a union vocabulary extends the base's tokenizer, so "
            f"tokenizer source {source} contradicts tui_merge.vocab: union; remove one of them."
        )
    if config.tokenizer is not None and options.vocab in ("truncate", "pad"):
        raise BadInputError(
            f"{loaded.where(('tokenizer',))}: the tokenizer: block matches rows by token, so it contradicts "
            f"tui_merge.vocab: {options.vocab} (rows by position); remove one of them."
        )
    by_token = (
        config.tokenizer is not None or options.vocab == "union" or (options.vocab is None and source is not None)
    )
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
    union = config.tui_merge.vocab == "union" or config.tokenizer_choice == "union"
    named = None if union else _named_tokenizer(loaded, models, first)  # a misspelt source is said first
    vocabularies = {}
    for name in rows:
        facts = tokenizer_facts(models[name].folder)
        if facts is None:
            raise BadInputError(
                f"Matching rows by token needs every model's tokenizer, and {models[name].label} has none in "
                f"{models[name].folder}; use tui_merge: {{vocab: truncate}} or {{vocab: pad}} instead."
            )
        vocabularies[name] = facts
    if named is None:
        target_name = first
        tokens, added = union_tokens(vocabularies[first], [vocabularies[name] for name in rows if name != first])
        target = vocabularies[first]
    else:
        target_name, target = named
        tokens, added = target.by_id(), []
    positional = target_name if target_name in rows else None
    block = config.tokenizer
    multiple = (block.pad_to_multiple_of or 1) if block is not None else 1
    alignment = align_by_token(tokens, vocabularies, rows, positional=positional, base=config.base_model,
                               multiple=multiple)  # fmt: skip
    overrides, override_notes = _token_overrides(loaded, tokens, vocabularies, rows)
    alignment = replace(alignment, overrides=overrides)
    if alignment.is_identity(rows) and not added and not overrides:
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
    return VocabPlan("union" if union else "tokens", alignment.rows, alignment, tokenizer, (*notes, *override_notes))


def source_key(config) -> tuple[str, ...]:
    """Where the config names its tokenizer source, for messages."""
    return ("tokenizer", "source") if config.tokenizer is not None else ("tokenizer_source",)


def _token_overrides(
    loaded: LoadedConfig, tokens: list[str | None], vocabularies: dict[str, TokenizerFacts], rows: dict[str, int]
) -> tuple[tuple[RowOverride, ...], list[str]]:
    """The rows ``tokenizer.tokens`` names, checked against the models and their tokenizers; and notes about
    tokens the output tokenizer does not have (ignored, as mergekit ignores them)."""
    block = loaded.config.tokenizer
    if block is None or not block.tokens:
        return (), []
    row_of = {token: row for row, token in enumerate(tokens) if token is not None}
    overrides, notes = [], []
    for token, settings in block.tokens.items():
        where = loaded.where(("tokenizer", "tokens", token))
        if token not in row_of:
            notes.append(f"tokenizer.tokens names {token!r}, which the output tokenizer does not have: ignored")
            continue
        source = settings.source
        if source is None:
            raise BadInputError(f"{where}: give the token a source (a model, {{kind: zero}} or {{kind: model_token}}).")
        if isinstance(source, ZeroToken):
            overrides.append(RowOverride(row_of[token], None, 0, settings.force))
            continue
        model = source.model if isinstance(source, ModelToken) else source
        if model not in rows:
            merged = ", ".join(rows)
            raise BadInputError(f"{where}: {model} is not one of the merged models ({merged}); name one of them.")
        if isinstance(source, ModelToken) and source.token_id is not None:
            source_row = source.token_id
        else:
            wanted = source.token if isinstance(source, ModelToken) else token
            source_row = vocabularies[model].ids.get(wanted, -1)
            if source_row < 0:
                raise BadInputError(f"{where}: the tokenizer of {model} has no token {wanted!r}.")
        if source_row >= rows[model]:
            raise BadInputError(f"{where}: row {source_row} is past the {rows[model]} rows of {model}.")
        overrides.append(RowOverride(row_of[token], model, source_row, settings.force))
    return tuple(overrides), notes


def _named_tokenizer(loaded: LoadedConfig, models: dict[str, ModelInfo], first: str) -> tuple[str, TokenizerFacts]:
    source = loaded.config.tokenizer_choice or "base"
    name = first if source in ("base", "union") else source.removeprefix("model:")
    where = loaded.where(source_key(loaded.config))
    try:
        folder = models[name].folder if name in models else resolve_model(name).folder
    except BadInputError as error:
        raise BadInputError(
            f"{where}: {name} is neither base nor union nor a model here ({error.message.rstrip('.')})."
        ) from None
    facts = tokenizer_facts(folder)
    if facts is None:
        raise BadInputError(f"{where}: {folder} has no tokenizer files; name a model that has one.")
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
    source = config.tokenizer_choice
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
