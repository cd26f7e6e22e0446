"""Multi-stage recipes in mergekit-multi's format: several YAML documents in one file, each a merge config.

A document with ``name: NAME`` is a stage whose output a later stage uses by that name wherever a model goes
(``model: NAME``, ``base_model: NAME``, a slice's source, ``NAME+adapter``). The one document without a name is
the final merge; without one, the last document is. ``tui-merge run multi.yaml OUT`` runs the stages in the order
their uses need: the final one into ``OUT``, each other into ``WORK/NAME`` (``WORK`` is ``OUT.stages`` beside
``OUT``, or mergekit-multi's ``--intermediate-dir``). A stage whose folder already holds this recipe's merge
(its ``tui_merge_config.yaml`` is the stage's text) is kept, so a run stopped in stage 2 and run again redoes
only stage 2 (``--resume`` continues it from its ``.partial``); ``--stage NAME`` runs one stage and those it
needs. Each stage is an ordinary merge job: streaming, atomic output, verify.

Each stage's text is the document as written, with the names of earlier stages replaced by their folders
(``config.editing``) and blank lines in front so that every message names the line of the file.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tui_merge.config.editing import set_values
from tui_merge.errors import BadInputError

_NAME_LINE = re.compile(r"^name:[^\n]*$", re.M)


@dataclass(frozen=True)
class Stage:
    """One document of the recipe."""

    name: str | None
    """None for the final, unnamed merge."""
    text: str
    """The document, ``name:`` blanked and blank lines in front, so a line number is the file's."""
    line: int
    """The document's first line in the file."""
    uses: dict[tuple, str]
    """Where the document names an earlier stage: key path -> the reference as written (``NAME`` or
    ``NAME+adapter``)."""

    @property
    def label(self) -> str:
        return f"stage {self.name}" if self.name else "the final stage"


def is_multi_stage(text: str) -> bool:
    """True when ``text`` holds more than one YAML document."""
    return len(documents(text)) > 1


def read_stages(text: str, source: str) -> list[Stage]:
    """The stages in the order they must run (a stage after those it uses); the final one last."""
    parts = documents(text)
    names: dict[str, int] = {}
    raw: list[tuple[str | None, str, int, dict]] = []
    unnamed = 0
    for start, body in parts:
        try:
            data = yaml.safe_load(body)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f":{start + mark.line + 1}" if mark else f":{start + 1}"
            raise BadInputError(
                f"{source}{where}: this is not valid YAML ({getattr(error, 'problem', error)})."
            ) from None
        if not isinstance(data, dict):
            raise BadInputError(f"{source}:{start + 1}: each document of a multi-stage recipe is a merge config.")
        name = data.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip() or "/" in name or "+" in name):
            raise BadInputError(f"{source}:{start + 1}: name {name!r} must be a word (no '/' or '+').")
        if name is None:
            unnamed += 1
            if unnamed > 1:
                raise BadInputError(f"{source}:{start + 1}: a second document without a name; only the final merge "
                                    "may go unnamed, give this one name: NAME.")  # fmt: skip
        elif name in names:
            raise BadInputError(f"{source}:{start + 1}: stage {name} is named twice (first at line {names[name]}).")
        else:
            names[name] = start + 1
        padded = "\n" * start + _NAME_LINE.sub("", body)
        raw.append((name, padded, start + 1, data))
    for name, padded, _, data in raw:
        _check_references(data, set(names), padded, source, name)
    stages = [Stage(name, padded, line, _uses(data, set(names))) for name, padded, line, data in raw]
    final = next((stage for stage in stages if stage.name is None), stages[-1])
    return _ordered(stages, final, source)


def stage_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a stage (a later stage writes it where a model goes), or None."""
    if not name.strip() or name != name.strip() or any(mark in name for mark in "/+:#") or " " in name:
        return f"Stage name {name!r} must be one word, without '/', '+', ':' or '#'."
    if name.startswith(("-", ".", "~")):
        return f"Stage name {name!r} must not start with '-', '.' or '~' (it would read as an option or a path)."
    return None


def add_stage(recipe: str, config: str, name: str, source: str, *, replace: bool = False) -> str:
    """``recipe`` with ``config`` added as stage ``name`` (``recipe`` may be empty: a new file).

    The config's leading comments stay on top, ``name: NAME`` follows them. A stage of that name already in the
    recipe is replaced where it stands when ``replace``, else refused; the result is read back as a recipe, so a
    circle or a misspelt stage is refused before anything is written."""
    problem = stage_name_problem(name)
    if problem:
        raise BadInputError(problem)
    lines = config.splitlines(keepends=True)
    top = 0
    while top < len(lines) and lines[top].startswith("#"):
        top += 1
    body = "".join(line for line in lines[top:] if not _NAME_LINE.match(line))
    stage = "".join(lines[:top]) + f"name: {name}\n" + body
    if not recipe.strip():
        combined = stage
    else:
        parts = recipe.splitlines(keepends=True)
        held = [(start, body) for start, body in documents(recipe) if _document_name(body) == name]
        if held and not replace:
            raise BadInputError(f"{source}:{held[0][0] + 1}: the recipe has a stage {name} already; choose "
                                "another name.")  # fmt: skip
        if held:
            start, body = held[0]
            end = start + len(body.splitlines())
            combined = "".join(parts[:start]) + stage + "".join(parts[end:])
        else:
            combined = recipe.rstrip("\n") + "\n---\n" + stage
    read_stages(combined, source)
    return combined


def has_stage(recipe: str, name: str) -> bool:
    """True when ``recipe`` holds a document named ``name``."""
    return any(_document_name(body) == name for _, body in documents(recipe))


def write_recipe(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: a synced file beside it renamed over it, so a crash never leaves a
    recipe of several stages cut short."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # os.open's mode passes through the umask, as a plain write's would (mkstemp's 0600 would hide the recipe).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _document_name(body: str) -> str | None:
    try:
        data = yaml.safe_load(body)
    except yaml.YAMLError:
        return None
    return data.get("name") if isinstance(data, dict) else None


def final_stage(stages: list[Stage]) -> Stage:
    """The stage whose output is ``OUT``."""
    return stages[-1]


def needed_for(stages: list[Stage], name: str, source: str) -> list[Stage]:
    """Stage ``name`` and those it uses, in running order (``--stage NAME``)."""
    by_name = {stage.name: stage for stage in stages}
    if name not in by_name:
        known = ", ".join(stage.name for stage in stages if stage.name) or "none"
        raise BadInputError(f"--stage {name}: {source} has no stage of that name (its stages: {known}).")
    wanted: set[str | None] = set()

    def add(stage: Stage) -> None:
        wanted.add(stage.name)
        for reference in stage.uses.values():
            add(by_name[reference.partition("+")[0]])

    add(by_name[name])
    return [stage for stage in stages if stage.name in wanted]


def stage_text(stage: Stage, folders: dict[str, Path]) -> str:
    """The stage's config with each earlier stage's name replaced by its output folder."""
    changes = {}
    for path, reference in stage.uses.items():
        name, plus, adapter = reference.partition("+")
        changes[path] = f"{_spelled_as_folder(folders[name])}{plus}{adapter}"
    edited = set_values(stage.text, changes)
    if edited is None:
        raise BadInputError(
            f"{stage.label} names an earlier stage inside a mapping written in flow style ({{model: ...}}); "
            "write that model on lines of its own."
        )
    return edited


def _spelled_as_folder(folder: Path) -> str:
    """A relative folder with ``./`` in front: ``out.stages/first`` reads as a hub id (org/name) before the
    stage has written it."""
    text = str(folder)
    return text if folder.is_absolute() or text.startswith((".", "~")) else f"./{text}"


def documents(text: str) -> list[tuple[int, str]]:
    """Each document's first line (0-based) and text, split at ``---`` lines."""
    documents: list[tuple[int, str]] = []
    start, lines = 0, []
    for number, line in enumerate(text.splitlines(keepends=True)):
        if line.rstrip() == "---" or line.startswith("--- "):
            if "".join(lines).strip():
                documents.append((start, "".join(lines)))
            start, lines = number + 1, []
            continue
        lines.append(line)
    if "".join(lines).strip():
        documents.append((start, "".join(lines)))
    return documents


def _check_references(data: dict, names: set[str], text: str, source: str, stage: str | None) -> None:
    """A bare word where a model goes that is no folder here but close to a stage's name: a misspelt stage (a word
    close to none is left to the model lookup, which says what it is not: a folder, a cached id)."""
    for reference in _references(data).values():
        word = reference.partition("+")[0]
        if word in names or "/" in word or Path(word).expanduser().exists():
            continue
        close = difflib.get_close_matches(word, sorted(names), n=1, cutoff=0.6)
        if not close:
            continue
        line = next(number for number, text_line in enumerate(text.splitlines(), 1) if word in text_line)
        what = f"stage {stage}" if stage else "the final stage"
        raise BadInputError(f"{source}:{line}: {what} uses {word}, which is neither a folder here nor a stage of "
                            f"this recipe; did you mean stage {close[0]!r}?")  # fmt: skip


def _uses(data: dict, names: set[str]) -> dict[tuple, str]:
    """The key paths of the document whose value names a stage."""
    return {path: value for path, value in _references(data).items() if value.partition("+")[0] in names}


def _references(data: dict) -> dict[tuple, str]:
    """Every model reference of a document by key path."""
    found: dict[tuple, str] = {}

    def check(path: tuple, value: object) -> None:
        if isinstance(value, str):
            found[path] = value

    check(("base_model",), data.get("base_model"))
    for index, entry in enumerate(data.get("models") or []):
        if isinstance(entry, dict):
            check(("models", index, "model"), entry.get("model"))
    for index, piece in enumerate(data.get("slices") or []):
        for number, source in enumerate((piece or {}).get("sources") or [] if isinstance(piece, dict) else []):
            if isinstance(source, dict):
                check(("slices", index, "sources", number, "model"), source.get("model"))
    return found


def _ordered(stages: list[Stage], final: Stage, source: str) -> list[Stage]:
    """Stages after those they use, the final one last; a circle is refused naming its stages."""
    by_name = {stage.name: stage for stage in stages if stage.name}
    order: list[Stage] = []
    visiting: list[str | None] = []

    def visit(stage: Stage) -> None:
        if stage in order:
            return
        if stage.name in visiting:
            circle = " -> ".join(str(name) for name in [*visiting[visiting.index(stage.name) :], stage.name])
            raise BadInputError(f"{source}:{stage.line}: the stages use one another in a circle ({circle}).")
        visiting.append(stage.name)
        for reference in stage.uses.values():
            visit(by_name[reference.partition("+")[0]])
        visiting.pop()
        order.append(stage)

    for stage in stages:
        if stage is not final:
            visit(stage)
    visit(final)
    if order[-1] is not final:
        raise BadInputError(f"{source}:{final.line}: a stage uses the final merge's output; it must come last.")
    return order
