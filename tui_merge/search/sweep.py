"""``tui-merge sweep``: one candidate config per combination of values, each merged, scored and ranked.

``--vary NAME=V1,V2,...`` names a parameter and its values. ``NAME`` is a
global parameter (``t``, ``lambda``), ``parameters.NAME`` the same, or
``models[I].NAME`` one model's own (``models[1].weight``); a bare name that
some model sets itself is refused (the global value would change nothing).
Values are YAML, so a value may be a gradient: ``t=[0,0.5,1],[1,0.5,0],0.5``.

Every candidate is validated before the first merge. The sweep folder
(``CONFIG.sweep/<id>`` beside the config, ``<id>`` a hash of the config,
the variations and the text, so sweeps of other values never mix; ``--dir``
puts it elsewhere) keeps each candidate's config (``candidate-N.yaml``) and
a journal of the scores, so an interrupted sweep run again with the same
arguments continues with the next candidate; a candidate's merged folder is removed once it is scored,
unless ``--keep``. The best candidate's config replays with ``tui-merge run``
to the bytes that candidate had. A candidate's config is the swept config's text with only the swept values
changed (``config.editing``): its comments and layout stay, so ``-o best.yaml`` reads as the template did.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tui_merge.config.editing import with_values
from tui_merge.config.loading import LoadedConfig, parse_config
from tui_merge.errors import BadInputError
from tui_merge.search.space import place_of

JOURNAL = "sweep.jsonl"


@dataclass(frozen=True)
class Variation:
    """One ``--vary``: where the parameter lives and the values it takes."""

    name: str
    """As given (``t``, ``models[1].weight``)."""
    model: int | None
    """Index into ``models:`` for a model's own parameter, None for the global one."""
    parameter: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Candidate:
    """One combination of values and its config."""

    index: int
    values: dict[str, Any]
    """By variation name."""
    text: str
    """The candidate's config."""


@dataclass(frozen=True)
class Result:
    """A scored candidate."""

    candidate: Candidate
    perplexity: float


def parse_variation(text: str, loaded: LoadedConfig) -> Variation:
    """``NAME=V1,V2,...`` checked against the config; BadInputError when it names nothing to vary or no value."""
    name, sep, values_text = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise BadInputError(f"--vary {text}: write it as NAME=V1,V2,... (for example t=0.2,0.5,0.8).")
    try:
        values = yaml.safe_load(f"[{values_text}]")
    except yaml.YAMLError:
        raise BadInputError(f"--vary {text}: the values are not numbers or lists of numbers.") from None
    if not values or any(value is None for value in values):
        raise BadInputError(f"--vary {name}: give at least one value after '=' (V1,V2,...).")
    model, parameter = place_of(name, loaded, f"--vary {name}", "vary")
    return Variation(name, model, parameter, tuple(values))


def candidates(loaded: LoadedConfig, variations: list[Variation]) -> list[Candidate]:
    """Every combination, each config validated (BadInputError naming the first bad one)."""
    made = []
    for index, combination in enumerate(itertools.product(*(variation.values for variation in variations)), 1):
        values = {variation.name: value for variation, value in zip(variations, combination)}
        changes = {
            ("parameters", variation.parameter) if variation.model is None
            else ("models", variation.model, "parameters", variation.parameter): value
            for variation, value in zip(variations, combination)
        }  # fmt: skip
        edited = with_values(loaded.text, changes)
        text = f"# sweep candidate {index}: {_words(values)}\n" + edited
        source = f"candidate {index}"
        try:
            parse_config(text, source)
        except BadInputError as error:
            detail = error.message.removeprefix(source).lstrip(":0123456789 ")
            raise BadInputError(f"--vary {_words(values)}: {detail} No merge was started.") from None
        made.append(Candidate(index, values, text))
    return made


def fingerprint(loaded: LoadedConfig, variations: list[Variation], text: str) -> str:
    """Changes when the config, the variations or the scored text change: a journal of another sweep is not
    continued."""
    digest = hashlib.sha256(loaded.text.encode())
    digest.update(json.dumps([[v.name, list(v.values)] for v in variations]).encode())
    digest.update(text.encode())
    return digest.hexdigest()


def finished(folder: Path, stamp: str) -> dict[int, float]:
    """Scores the journal in ``folder`` holds for this sweep; BadInputError for a journal of another sweep."""
    path = folder / JOURNAL
    if not path.is_file():
        return {}
    scores: dict[int, float] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        head = json.loads(lines[0]) if lines else {}
        if head.get("sweep") != stamp:
            raise BadInputError(
                f"{folder} holds another sweep (another config, --vary or text); remove it (rm -r {folder}) or "
                "give --dir another folder."
            )
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # cut short by an interruption: the candidate runs again
            scores[int(entry["candidate"])] = float(entry["perplexity"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise BadInputError(f"The sweep journal {path} is damaged; remove {folder} and run the sweep again.") from None
    return scores


def sweep_folder(parent: Path, loaded: LoadedConfig, variations: list[Variation], text: str) -> Path:
    """The folder of this sweep under ``parent``: one per config, variations and text."""
    return parent / fingerprint(loaded, variations, text)[:12]


def run_sweep(
    loaded: LoadedConfig,
    variations: list[Variation],
    folder: Path,
    text: str,
    *,
    keep: bool = False,
    device: str = "auto",
    say: Callable[[str], None] = print,
) -> list[Result]:
    """Merge and score each candidate not already in the journal; the results ranked, best first."""
    from tui_merge.engine.job import MergeJob, run_job
    from tui_merge.evaluation.scoring import score_models

    made = candidates(loaded, variations)
    stamp = fingerprint(loaded, variations, text)
    done = finished(folder, stamp)
    folder.mkdir(parents=True, exist_ok=True)
    journal = folder / JOURNAL
    if not journal.is_file():
        journal.write_text(json.dumps({"sweep": stamp}) + "\n", encoding="utf-8")
    for candidate in made:
        config = folder / f"candidate-{candidate.index}.yaml"
        config.write_text(candidate.text, encoding="utf-8")
        if candidate.index in done:
            continue
        say(f"candidate {candidate.index}/{len(made)}: {_words(candidate.values)}")
        output = folder / f"candidate-{candidate.index}"
        if output.exists():
            shutil.rmtree(output)  # left by an interrupted run: its score was never written
        candidate_loaded = parse_config(candidate.text, str(config))
        run_job(MergeJob(candidate_loaded, output))
        score = score_models([str(output)], text, [], device=device)[0]
        if score.perplexity is None:
            raise BadInputError(f"The merged candidate cannot be scored: {score.skipped}.")
        with journal.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"candidate": candidate.index, "perplexity": score.perplexity}) + "\n")
        done[candidate.index] = score.perplexity
        say(f"  perplexity {score.perplexity:.3f}")
        if not keep:
            shutil.rmtree(output)
    results = [Result(candidate, done[candidate.index]) for candidate in made]
    return sorted(results, key=lambda result: (result.perplexity, result.candidate.index))


def sparkline(values: list[float]) -> str:
    """One eighth-block character per value, low to high."""
    blocks = "▁▂▃▄▅▆▇█"
    low, high = min(values), max(values)
    span = high - low
    return "".join(blocks[0 if span == 0 else round((value - low) / span * 7)] for value in values)


def _words(values: dict[str, Any]) -> str:
    return ", ".join(f"{name}={json.dumps(value)}" for name, value in values.items())
