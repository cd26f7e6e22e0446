"""``tui-merge compare MODEL [MODEL...]``: perplexity on a text and greedy continuations, side by side."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui_merge.errors import BadInputError
from tui_merge.evaluation.sample_text import scored_text


def run(args: argparse.Namespace) -> int:
    """Score each model, then print the table (or JSON)."""
    from tui_merge.evaluation.scoring import score_models

    if args.max_new_tokens < 1:
        raise BadInputError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}.")
    text = scored_text(args.text)
    progress = _Progress()
    scores = score_models(args.models, text, args.prompt or [], max_new_tokens=args.max_new_tokens,
                          device=args.device, on_progress=progress)  # fmt: skip
    if args.json:
        print(json.dumps(compare_json(text, args.prompt or [], scores), indent=2))
        return 0
    console = Console()
    console.print(perplexity_caption(args.text))
    console.print(perplexity_table(scores))
    for prompt in args.prompt or []:
        console.print(continuation_table(prompt, scores))
    samples = sample_note(args.models)
    if samples:
        console.print(Text(samples, style="dim"))
    return 0


def sample_note(models: list[str]) -> str | None:
    """A line saying which models are ``tui-merge demo``'s untrained samples (their text is noise), or None."""
    from tui_merge.models.lora import resolve_reference
    from tui_merge.samples import is_sample_model

    names = short_names(models)
    samples = [names[model] for model in models if is_sample_model(resolve_reference(model).folder)]
    if not samples:
        return None
    which = "is one of" if len(samples) == 1 else "are"
    return (f"note: {', '.join(samples)} {which} tui-merge demo's untrained sample "
            "models: their text is noise and their perplexity near the vocabulary size, which shows how compare "
            "works, not what a merge is worth.")  # fmt: skip


def compare_json(text: str, prompts: list[str], scores) -> dict:
    """The ``--json`` document: the text, each model's perplexity and token count, each prompt's continuations."""
    return {
        "text": text,
        "models": [
            {
                "model": score.model,
                "perplexity": score.perplexity,
                "tokens": score.tokens,
                **({"skipped": score.skipped} if score.skipped else {}),
            }
            for score in scores
        ],  # fmt: skip
        "prompts": [
            {
                "prompt": prompt,
                "continuations": {
                    score.model: score.continuations[prompt] for score in scores if prompt in score.continuations
                },
            }
            for prompt in prompts
        ],  # fmt: skip
    }


def perplexity_caption(text_path: str | None) -> str:
    """What the perplexities were measured on."""
    from tui_merge.evaluation.sample_text import SAMPLE_SOURCE

    return f"Perplexity on {text_path or f'the built-in sample: {SAMPLE_SOURCE}'}"


def short_names(models: list[str]) -> dict[str, str]:
    """A short title for each model argument, as the wizard's Try shows them (``distinct_names``): a folder's
    name (with its parent's where two names would read the same), a hub id as it is."""
    from tui_merge.models.info import distinct_names
    from tui_merge.models.resolve import is_hub_id

    hub = [is_hub_id(model) for model in models]
    named = [(model, model if remote else Path(model).expanduser().name, remote) for model, remote in zip(models, hub)]
    return dict(zip(models, distinct_names(named)))


def perplexity_table(scores) -> Table:
    """One row per model; the lowest perplexity marked."""
    scored = [score.perplexity for score in scores if score.perplexity is not None]
    best = min(scored) if scored else None
    table = Table(box=None, padding=(0, 2, 0, 0))
    table.add_column("model", overflow="fold")
    table.add_column("perplexity", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("")
    names = short_names([score.model for score in scores])
    for score in scores:
        if score.perplexity is None:
            table.add_row(Text(names[score.model]), "-", "-", Text(f"skipped: {score.skipped}", style="dim"))
            continue
        lowest = score.perplexity == best and len(scored) > 1
        table.add_row(
            Text(names[score.model]), Text(f"{score.perplexity:.3f}", style="bold green" if lowest else ""),
            str(score.tokens),
            Text("lowest", style="bold green") if lowest else "",
        )  # fmt: skip
    return table


def continuation_table(prompt: str, scores) -> Table:
    """The prompt's continuation by each scored model, side by side."""
    table = Table(title=f"Prompt: {prompt}", title_justify="left", show_lines=True)
    answered = [score for score in scores if prompt in score.continuations]
    names = short_names([score.model for score in scores])
    for score in answered:
        table.add_column(Text(names[score.model]), overflow="fold", ratio=1)
    table.add_row(*[Text(score.continuations[prompt]) for score in answered])
    return table


class _Progress:
    """Say which model is being scored on stderr; on a terminal, count its windows on one line."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.live = sys.stderr.isatty()

    def __call__(self, model: str, done: int, total: int) -> None:
        if model != self.current:
            self.current = model
            windows = f" ({total} windows of its context)" if total > 1 else ""
            print(f"scoring {model}{windows}", file=sys.stderr, flush=True)
        if self.live and total > 1:
            end = "\n" if done == total else ""
            print(f"\r  window {done}/{total}", end=end, file=sys.stderr, flush=True)
