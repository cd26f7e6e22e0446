"""A plan in words: what the merge reads and writes and whether it fits, for the dry run and the wizard's review."""

from __future__ import annotations

from pathlib import Path

from tui_merge.engine.disk import free_space
from tui_merge.engine.plan import Plan
from tui_merge.units import human_bytes

_STRATEGY_WORDS = {
    "truncate": "truncated to the base's rows",
    "pad": "padded to the largest with mean rows",
    "union": "union of the tokenizers, rows matched by token",
    "tokens": "rows matched by token to the chosen tokenizer",
}


def plan_summary(plan: Plan, output: Path | None = None) -> list[str]:
    """Lines describing what the merge reads and writes and whether it fits (dry run, wizard review)."""
    shards = len(plan.shards)
    lines = [
        f"Plan: {plan.config.merge_method} of {len(plan.models)} models into {plan.out_dtype}",
        f"  tensors        {len(plan.tasks)} ({plan.num_layers} layers, vocabulary {plan.vocab_rows})",
        f"  read           {human_bytes(plan.bytes_to_read)}",
        f"  write          {human_bytes(plan.bytes_to_write)} in {shards} shard{'s' if shards != 1 else ''}",
        f"  peak memory    about {human_bytes(plan.peak_bytes)}",
    ]
    if output is not None:
        # The output as the person named it: a resolved path would differ from machine to machine.
        lines.append(f"  free disk      {human_bytes(free_space(output)[1])} where {output} goes")
    vocabulary = plan.vocabulary
    if vocabulary.strategy:
        lines.append(f"  vocabulary     {_STRATEGY_WORDS[vocabulary.strategy]}, {vocabulary.rows} rows")
    if vocabulary.tokenizer is not None:
        added = f" plus {len(vocabulary.tokenizer.added)} tokens" if vocabulary.tokenizer.added else ""
        source = vocabulary.tokenizer.source
        # The model as the config names it: its resolved folder differs from machine to machine.
        named = next((name for name, info in plan.models.items() if info.folder == source), source)
        lines.append(f"  tokenizer      {named}{added}")
    lines += [f"  note           {note}" for note in (*vocabulary.notes, *plan.notes)]
    return lines
