"""Rows matched by token: each model's vocabulary matrix rearranged to the output tokenizer's ids.

For every output row (a token of the output tokenizer) each model either has
that token, at its own id, or lacks it. A row a model lacks is filled, in
this order: from the base model's row, when the base has the token; else
from the mean of the models that have it (the row itself when only one
does); else, when no model has it, from the mean row of that model's own
matrix. Never zeros: a zero row has no direction, which makes SLERP divide
by zero, and it is how earlier tools shipped NaN.

mergekit's ``tokenizer.tokens`` overrides that fill for named tokens
(``RowOverride``): the row of a chosen model (of that token, or of another
token), or zeros when the recipe asks for ``{kind: zero}``; with ``force``
it replaces the row in every model, even those that have the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tui_merge.vocab.tokenizer import AddedToken, TokenizerFacts

if TYPE_CHECKING:
    import torch

MISSING = -1


@dataclass(frozen=True)
class RowOverride:
    """One output row whose source a recipe names (mergekit's ``tokenizer.tokens``)."""

    row: int
    model: str | None
    """The model whose row is taken, or None for zeros."""
    source_row: int
    """The row of ``model``'s own matrix (its id of the token, or of another token)."""
    force: bool
    """Every model takes it, not only those that lack the token."""


@dataclass(frozen=True, eq=False)
class VocabAlignment:
    """Where each output row comes from in each model's matrix."""

    rows: int
    sources: dict[str, tuple[int, ...]]
    """Per model (config name), the source row of each output row, or ``MISSING``."""
    base: str | None
    """The model whose rows fill those another model lacks, when it has them."""
    overrides: tuple[RowOverride, ...] = ()
    """Rows whose source the recipe names, applied after the fill."""
    pad_from: int | None = None
    """With ``pad_to_multiple_of``: the tokenizer's token count, where the padding rows begin. As mergekit
    fills them, each model's padding rows are the mean of its own aligned rows before them (after the fill
    and the overrides), computed in the inputs' stored precision."""

    def missing(self, model: str) -> int:
        """How many output rows ``model`` lacks."""
        return sum(1 for source in self.sources[model] if source == MISSING)

    def is_identity(self, model_rows: dict[str, int]) -> bool:
        """True when every model already has every row in place: nothing to rearrange."""
        return all(
            model_rows[model] == self.rows and all(source == row for row, source in enumerate(sources))
            for model, sources in self.sources.items()
        )


def union_tokens(first: TokenizerFacts, others: Sequence[TokenizerFacts]) -> tuple[list[str | None], list[AddedToken]]:
    """The union vocabulary in id order, and the tokens it adds to ``first``.

    ``first`` keeps every id it has, so its special token ids stay valid; each
    token it lacks follows, in the order of the other tokenizers and their
    ids, and becomes an added token (special when it is special where it
    comes from).
    """
    tokens = first.by_id()
    known = set(first.ids)
    added: list[AddedToken] = []
    for other in others:
        for token in other.by_id():
            if token is None or token in known:
                continue
            known.add(token)
            tokens.append(token)
            added.append(AddedToken(token, other.added.get(token, False)))
    return tokens, added


def align_by_token(
    tokens: Sequence[str | None],
    vocabularies: dict[str, TokenizerFacts],
    model_rows: dict[str, int],
    *,
    positional: str | None,
    base: str | None,
    multiple: int = 1,
) -> VocabAlignment:
    """Match every model's rows to ``tokens`` (the output tokenizer's tokens in id order).

    The output has a row per token, and at least as many rows as the model
    named ``positional`` (the one whose tokenizer the output uses): rows past
    its tokenizer (padding rows many checkpoints carry) keep their place. The
    row count is rounded up to a ``multiple`` (mergekit's ``pad_to_multiple_of``).
    """
    least = max(len(tokens), model_rows.get(positional, 0) if positional else 0)
    rows = -(-least // multiple) * multiple
    sources: dict[str, tuple[int, ...]] = {}
    for model, vocabulary in vocabularies.items():
        limit = model_rows[model]
        column = []
        for row in range(rows):
            token = tokens[row] if row < len(tokens) else None
            # A row no token names (padding past the tokenizer) stays in place in the positional model only.
            positional_index = row if model == positional else MISSING
            index = vocabulary.ids.get(token, MISSING) if token is not None else positional_index
            column.append(index if index < limit else MISSING)
        sources[model] = tuple(column)
    pad_from = len(tokens) if multiple > 1 and rows > len(tokens) else None
    return VocabAlignment(rows, sources, base, pad_from=pad_from)


def align_rows(
    matrices: Sequence[tuple[str, torch.Tensor]], alignment: VocabAlignment, precision: torch.dtype | None = None
) -> list[torch.Tensor]:
    """Each ``(model, matrix)`` rearranged to the output rows, the rows it lacks filled (see the module doc);
    padding rows (``VocabAlignment.pad_from``) take the mean of the rows before them, rounded to ``precision``
    (the inputs' stored dtype, in which mergekit computes it).

    Memory: one output-sized copy per matrix; the fill works on the few rows
    some model lacks, not on whole matrices (an embedding of a 70B model is
    gigabytes).
    """
    return _padded(_aligned(matrices, alignment), alignment.pad_from, precision)


def _padded(outputs: list[torch.Tensor], pad_from: int | None, precision: torch.dtype | None) -> list[torch.Tensor]:
    if pad_from is None:
        return outputs
    for output in outputs:
        mean = output[:pad_from].mean(dim=0, keepdim=True)
        if precision is not None:
            mean = mean.to(precision).to(output.dtype)
        output[pad_from:] = mean
    return outputs


def _aligned(matrices: Sequence[tuple[str, torch.Tensor]], alignment: VocabAlignment) -> list[torch.Tensor]:
    import torch

    gathered, present = [], []
    for model, matrix in matrices:
        sources = torch.as_tensor(alignment.sources[model], device=matrix.device)
        have = sources != MISSING
        gathered.append(matrix.index_select(0, sources.clamp(min=0)))
        present.append(have)
    lacking = (~torch.stack(present).all(dim=0)).nonzero().squeeze(1)
    if lacking.numel() == 0:
        return _overridden(matrices, gathered, present, alignment.overrides)
    shape = (-1,) + (1,) * (gathered[0].dim() - 1)
    rows = [matrix.index_select(0, lacking) for matrix in gathered]
    has = [have.index_select(0, lacking) for have in present]
    counts = torch.stack(has).sum(dim=0)
    total = sum(torch.where(have.view(shape), row, 0.0) for row, have in zip(rows, has))
    shared = total / counts.clamp(min=1).view(shape).to(total.dtype)
    base = next((index for index, (model, _) in enumerate(matrices) if model == alignment.base), None)
    if base is not None:
        shared = torch.where(has[base].view(shape), rows[base], shared)
    for (_, matrix), output, row, have in zip(matrices, gathered, rows, has):
        fill = torch.where((counts > 0).view(shape), shared, matrix.mean(dim=0, keepdim=True))
        output.index_copy_(0, lacking, torch.where(have.view(shape), row, fill))
    return _overridden(matrices, gathered, present, alignment.overrides)


def _overridden(
    matrices: Sequence[tuple[str, torch.Tensor]],
    gathered: list[torch.Tensor],
    present: list[torch.Tensor],
    overrides: tuple[RowOverride, ...],
) -> list[torch.Tensor]:
    """``gathered`` with each override's row put in place where it applies (forced, or the model lacks it)."""
    import torch

    sources = dict(matrices)
    for override in overrides:
        if override.model is None:
            row = torch.zeros_like(gathered[0][override.row])
        else:
            row = sources[override.model][override.source_row]
        for output, have in zip(gathered, present):
            if override.force or not bool(have[override.row]):
                output[override.row] = row
    return gathered
