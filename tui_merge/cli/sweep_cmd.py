"""``tui-merge sweep merge.yaml --vary NAME=V1,V2,...``: merge and score each candidate, ranked."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui_merge.cli.compare_cmd import perplexity_caption
from tui_merge.config.loading import load_config
from tui_merge.errors import BadInputError
from tui_merge.evaluation.sample_text import scored_text
from tui_merge.search.sweep import parse_variation, run_sweep, sparkline, sweep_folder


def run(args: argparse.Namespace) -> int:
    """Validate every candidate, then merge, score and rank them; ``-o`` writes the best one's config."""
    loaded = load_config(Path(args.config))
    if not args.vary:
        raise BadInputError("Give at least one --vary NAME=V1,V2,... (for example --vary t=0.2,0.5,0.8).")
    variations = [parse_variation(text, loaded) for text in args.vary]
    text = scored_text(args.text)
    parent = Path(args.dir) if args.dir else Path(args.config).with_suffix(".sweep")
    folder = sweep_folder(parent, loaded, variations, text)
    if args.output and Path(args.output).is_dir():
        raise BadInputError(f"{args.output} is a folder; name the config file to write, such as best.yaml.")
    results = run_sweep(loaded, variations, folder, text, keep=args.keep, device=args.device,
                        say=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    console = Console()
    console.print(perplexity_caption(args.text))
    console.print(f"candidate configs in {folder}")
    table = Table(box=None, padding=(0, 2, 0, 0))
    table.add_column("rank", justify="right")
    for variation in variations:
        table.add_column(variation.name)
    table.add_column("perplexity", justify="right")
    table.add_column("config")
    for rank, result in enumerate(results, 1):
        values = [json.dumps(result.candidate.values[variation.name]) for variation in variations]
        style = "bold green" if rank == 1 else ""
        table.add_row(str(rank), *values, Text(f"{result.perplexity:.3f}", style=style),
                      f"candidate-{result.candidate.index}.yaml")  # fmt: skip
    console.print(table)
    in_order = [result.perplexity for result in sorted(results, key=lambda result: result.candidate.index)]
    names = " x ".join(variation.name for variation in variations)
    console.print(f"perplexity over {names}, in the order given: {sparkline(in_order)}")
    if args.output:
        Path(args.output).write_text(results[0].candidate.text, encoding="utf-8")
        console.print(f"wrote the best candidate's config to {args.output}: tui-merge run {args.output} OUT")
    return 0
