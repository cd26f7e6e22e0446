"""``tui-merge import-recipe``: the mergekit recipe of a model card, as a config to run here.

Model cards of merged models carry their recipe as a fenced YAML block
(```` ```yaml ````); the first such block with ``merge_method`` is the recipe
(a fenced block of another language is taken only when no yaml block has
one). Its text is kept as it is, comments included, under a line saying
where it came from, and it is validated like any config, with errors
pointing at the card's own lines. Model ids are not rewritten: a hub id
resolves against the local Hugging Face cache when the merge runs, so the
config stays portable; each is looked up now, and the missing ones are
listed with the command that fetches them.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tui_merge.config.loading import parse_config, read_text
from tui_merge.errors import BadInputError
from tui_merge.models.lora import resolve_reference

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w.+-]*)")


@dataclass(frozen=True)
class FencedBlock:
    """One fenced code block of a markdown file."""

    language: str
    first_line: int
    """1-based line of the block's first content line in the file."""
    text: str
    closed: bool = True
    """False when the file ends before the block's closing fence."""


def fenced_blocks(markdown: str) -> list[FencedBlock]:
    """Every fenced code block, in order; an unclosed block runs to the end of the file."""
    blocks, lines = [], markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, language = opening[1], opening[2].lower()
        body, index = [], index + 1
        start = index + 1
        while index < len(lines) and not lines[index].strip().startswith(fence[0] * len(fence)):
            body.append(lines[index])
            index += 1
        blocks.append(FencedBlock(language, start, "\n".join(body) + "\n", closed=index < len(lines)))
        index += 1
    return blocks


def find_recipe(markdown: str) -> FencedBlock | None:
    """The card's recipe: the first yaml block with ``merge_method``, else the first such block of any language."""
    candidates = [block for block in fenced_blocks(markdown) if re.search(r"^\s*merge_method\s*:", block.text, re.M)]
    yaml_blocks = [block for block in candidates if block.language in ("yaml", "yml")]
    return (yaml_blocks or candidates or [None])[0]


def run(args: argparse.Namespace) -> int:
    """Extract, validate, write (or print) and report which models are at hand."""
    card = Path(args.card)
    markdown = read_text(card, "Model card")
    block = find_recipe(markdown)
    if block is None:
        raise BadInputError(
            f"{card} holds no mergekit recipe (no fenced yaml block with merge_method); copy the recipe into a "
            ".yaml file by hand."
        )
    if not block.closed:
        raise BadInputError(
            f"{card}:{block.first_line - 1}: the fenced block holding the recipe is never closed, so where the "
            "recipe ends is unknown; add the closing fence and import again."
        )
    # Blank lines in front keep the card's line numbers in every validation message.
    loaded = parse_config("\n" * (block.first_line - 1) + block.text, str(card))
    text = f"# Imported from {card} (lines {block.first_line}-) by tui-merge import-recipe.\n{block.text}"
    if args.output and not args.print_yaml:
        output = Path(args.output)
        if output.is_dir():
            raise BadInputError(f"{output} is a folder; name the config file to write, such as merge.yaml.")
        if output.exists() and output.resolve() == card.resolve():
            raise BadInputError(f"{output} is the model card being imported; write the config to another file.")
        if output.exists() and not args.force:
            raise BadInputError(f"{output} already exists; choose another name or pass --force to overwrite it.")
        output.write_text(text, encoding="utf-8")
    else:
        print(text.rstrip("\n"), flush=True)
    missing, names = [], loaded.config.referenced_models()
    for name in names:
        try:
            found = resolve_reference(name)
        except BadInputError as error:
            missing.append(name)
            print(f"  missing  {name}: {error.message}", file=sys.stderr)
        else:
            adapter = f" + adapter {found.adapter}" if found.adapter else ""
            print(f"  found    {name}: {found.folder}{adapter}", file=sys.stderr)
    written = args.output and not args.print_yaml
    where = f"wrote {args.output}" if written else "printed the recipe"
    if missing:
        print(
            f"tui-merge: {where}; {len(missing)} of its {len(names)} models "
            f"{'is' if len(missing) == 1 else 'are'} not here yet: fetch them, then run it.",
            file=sys.stderr,
        )
        return 1
    run_hint = f": tui-merge run {args.output} OUT" if written else ""
    print(f"tui-merge: {where}; every model is here{run_hint}", file=sys.stderr)
    return 0
