"""Check a merged model folder before anyone spends GPU hours on it: ``tui-merge verify OUT``.

The checks stream the weights one tensor at a time (never a whole model in
memory) and build the transformers model on the meta device, which checks
names and shapes against the architecture without allocating its weights:

- weights: every header and the index read cleanly (no missing shard, no
  tensor the index places in the wrong file);
- index: no shard file the index leaves out, no tensor a shard holds that the
  index does not list, a ``total_size`` that is the tensors' bytes; several
  weight files without an index fail (transformers would load only one);
- manifest: every shard has the size and sha256 ``tui_merge_manifest.json``
  recorded when it was written (skipped for folders without one);
- finite: every floating-point tensor is free of NaN and Inf;
- config: ``config.json``'s layer count and vocabulary size match the
  weights, the tokenizer has no id past the embedding's rows, and the
  special token ids fit;
- recipe: when ``tui_merge_config.yaml`` is there and its input models are
  at hand, every tensor has the name, shape and dtype that recipe implies;
- transformers: the class ``config.json``'s ``architectures`` names expects
  exactly these tensors with these shapes (tied heads and non-persistent
  buffers aside; ``models.architecture_fit``).

``probe`` adds a perplexity comparison of the merge and its parents on a
built-in text; it loads each model in turn, so it needs the memory of the
largest one. A model without a causal language-model head (an encoder such as
``BertModel``, a masked language model) is skipped: its perplexity would come
from an untrained head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tui_merge.errors import TuiMergeError
from tui_merge.models.json_file import MAX_INDEX_BYTES, read_json_object

Outcome = Literal["passed", "failed", "skipped", "info"]

PROBE_TEXT = (
    "Merging models averages their weights layer by layer, tensor by tensor. A fine-tune moves the weights of "
    "its base only a little, so fine-tunes of one base can be merged. The quick brown fox jumps over the lazy "
    "dog while the server merges two checkpoints overnight."
)
"""The built-in probe text: plain English, so any causal language model has a meaningful perplexity on it."""

_EXAMPLES = 3


@dataclass(frozen=True)
class Check:
    """One verification step and what it found."""

    name: str
    outcome: Outcome
    detail: str


@dataclass
class VerifyReport:
    """All checks of one folder."""

    folder: Path
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(check.outcome != "failed" for check in self.checks)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "folder": str(self.folder),
            "ok": self.ok,
            "checks": [{"name": c.name, "outcome": c.outcome, "detail": c.detail} for c in self.checks],
        }


CHECK_MARKS = {"passed": "ok", "failed": "FAIL", "skipped": "skip", "info": "info"}
"""How each outcome is marked, in the CLI and the wizard alike."""


def check_line(check: Check) -> str:
    """One check as a line: ``ok    weights       21 tensors in 1 file(s)``."""
    return f"{CHECK_MARKS[check.outcome]:<4}  {check.name:<13} {check.detail}"


def verify_output(
    folder: Path, *, probe: bool = False, on_check: Callable[[Check], None] | None = None
) -> VerifyReport:
    """Run every check on ``folder``; ``on_check`` sees each result as it comes."""
    from tui_merge.models.info import load_model_info

    report = VerifyReport(folder)

    def add(name: str, outcome: Outcome, detail: str) -> None:
        check = Check(name, outcome, detail)
        report.checks.append(check)
        if on_check is not None:
            on_check(check)

    try:
        info = load_model_info(str(folder))
    except TuiMergeError as error:
        add("weights", "failed", error.message)
        return report
    add("weights", "passed", f"{len(info.tensors)} tensors in {len(info.checkpoint.files)} file(s)")
    for name, step in (
        ("index", _index),
        ("manifest", _manifest),
        ("finite", _finite),
        ("config", _config),
        ("recipe", _recipe),
        ("transformers", _transformers),
    ):
        try:
            outcome, detail = step(info)
        except TuiMergeError as error:
            outcome, detail = "failed", error.message
        add(name, outcome, detail)
    if probe:
        try:
            outcome, detail = _probe(info)
        except TuiMergeError as error:
            outcome, detail = "failed", error.message
        add("probe", outcome, detail)
    return report


def _index(info) -> tuple[Outcome, str]:
    from tui_merge.models.safetensors_header import read_safetensors_header

    index = info.folder / "model.safetensors.index.json"
    files = info.checkpoint.files
    if not index.is_file() and len(files) > 1:
        named = ", ".join(file.name for file in files[:_EXAMPLES])
        return "failed", f"{len(files)} weight files ({named}) but no index naming them; transformers loads one"
    if not index.is_file():
        return "passed", "single file, no index"
    listed = {entry.file.name for entry in info.stored_tensors.values()}
    present = {path.name for path in info.folder.glob("*.safetensors")}
    stray = sorted(present - listed)
    if stray:
        return "failed", f"{len(stray)} shard file(s) the index leaves out: {', '.join(stray[:_EXAMPLES])}"
    unlisted = []
    for name in sorted(listed):
        unlisted += [
            tensor for tensor in read_safetensors_header(info.folder / name) if tensor not in info.stored_tensors
        ]
    if unlisted:
        return "failed", f"{len(unlisted)} tensor(s) the index does not list: {', '.join(unlisted[:_EXAMPLES])}"
    metadata = read_json_object(index, limit=MAX_INDEX_BYTES).get("metadata")
    total = metadata.get("total_size") if isinstance(metadata, dict) else None
    stored = sum(entry.nbytes for entry in info.stored_tensors.values())
    if total is not None and total != stored:
        return "failed", f"the index gives total_size {total}, the tensors hold {stored} bytes"
    return "passed", f"{len(listed)} shards, every tensor listed once"


def _manifest(info) -> tuple[Outcome, str]:
    from tui_merge.engine.journal import file_sha256
    from tui_merge.engine.manifest import MANIFEST_NAME, read_manifest

    listed = read_manifest(info.folder)
    if listed is None:
        return "skipped", f"no {MANIFEST_NAME}"
    for file in info.checkpoint.files:
        if file.name not in listed:
            return "failed", f"{file.name} is not in {MANIFEST_NAME}: it was added after the merge"
    for name, (size, digest) in listed.items():
        path = info.folder / name
        if not path.is_file():
            return "failed", f"{name} is missing: {MANIFEST_NAME} lists it"
        if path.stat().st_size != size:
            return "failed", f"{name} is {path.stat().st_size} bytes, {MANIFEST_NAME} recorded {size}"
        if file_sha256(path) != digest:
            return "failed", f"{name} has changed since the merge wrote it (its sha256 differs from {MANIFEST_NAME})"
    return "passed", f"{len(listed)} shard(s), sizes and sha256 as written"


def _finite(info) -> tuple[Outcome, str]:
    from tui_merge.engine.finiteness import all_finite
    from tui_merge.models.reader import TensorReader

    bad = []
    checked = 0
    with TensorReader() as reader:
        for name, entry in info.tensors.items():
            tensor = reader.read(entry)
            if not tensor.is_floating_point():
                continue
            checked += 1
            if not all_finite(tensor):
                bad.append(name)
    limits = _limits_of_the_parents(info, bad) if bad else []
    bad = [name for name in bad if name not in limits]
    if bad:
        return "failed", f"{len(bad)} tensor(s) hold NaN or Inf: {', '.join(bad[:_EXAMPLES])}"
    if limits:
        return "passed", (f"{checked} floating-point tensors, all finite but {len(limits)} holding the infinities "
                          f"every parent holds there ({', '.join(limits[:_EXAMPLES])})")  # fmt: skip
    return "passed", f"{checked} floating-point tensors, all finite"


def _limits_of_the_parents(info, names: list[str]) -> list[str]:
    """Of ``names`` (tensors holding NaN or Inf), those whose infinities every input of the recipe holds at the
    same places with the same signs, and no NaN: a limit the architecture keeps (gemma4_audio's clipping
    bounds), which the merge carries over. None without the recipe's inputs at hand."""
    from tui_merge.engine.finiteness import shared_infinities
    from tui_merge.engine.prepare import prepare
    from tui_merge.models.reader import TensorReader

    recipe = info.folder / "tui_merge_config.yaml"
    if not recipe.is_file():
        return []
    try:
        plan = prepare(recipe)
    except TuiMergeError:
        return []
    tasks = {task.name: task for task in plan.tasks}
    kept = []
    with TensorReader() as reader:
        for name in names:
            task = tasks.get(name)
            if task is None or task.vocab is not None:
                continue
            refs = [*task.inputs, *([task.base] if task.base is not None else [])]
            tensors = [reader.read(entry).float() for entry in (info.tensors[name], *(ref.entry for ref in refs))]
            if shared_infinities(tensors) is not None:
                kept.append(name)
    return kept


def _config(info) -> tuple[Outcome, str]:
    from tui_merge.models.architecture_fit import built_exactly, rows_as_built
    from tui_merge.vocab.tokenizer import tokenizer_facts

    problems = []
    facts = info.facts
    if facts.num_layers is not None and info.depth and facts.num_layers != info.depth and not built_exactly(info):
        problems.append(f"config.json says {facts.num_layers} layers, the weights have {info.depth}")
    rows = info.vocab_rows if info.embedding_name else None
    if rows is not None and facts.vocab_size is not None and facts.vocab_size != rows and not rows_as_built(info):
        problems.append(f"config.json says vocab_size {facts.vocab_size}, the embedding has {rows} rows")
    tokenizer = tokenizer_facts(info.folder)
    if tokenizer is not None and rows is not None and tokenizer.size > rows:
        problems.append(f"the tokenizer has ids up to {tokenizer.size - 1}, past the embedding's {rows} rows")
    # A special token id past the embedding is how some families ship (starcoder2's, canine's defaults):
    # transformers loads the model and only warns, and the parents hold the same ids, so it is said, not failed.
    notes = []
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        values = facts.raw.get(key)
        values = values if isinstance(values, list) else [values]
        if rows is not None and any(isinstance(value, int) and value >= rows for value in values):
            notes.append(f"config.json's {key} {facts.raw.get(key)} is past the embedding's {rows} rows")
    if problems:
        return "failed", "; ".join(problems + notes)
    if notes:
        return "info", "; ".join(notes) + " (transformers loads it and only warns)"
    tokens = f", tokenizer of {tokenizer.size} ids" if tokenizer is not None else ", no tokenizer"
    vocabulary = f"{rows} vocabulary rows" if rows is not None else "no token embedding"
    return "passed", f"{info.depth} layers, {vocabulary}{tokens}"


def _recipe(info) -> tuple[Outcome, str]:
    from tui_merge.engine.prepare import prepare

    recipe = info.folder / "tui_merge_config.yaml"
    if not recipe.is_file():
        return "skipped", "no tui_merge_config.yaml"
    try:
        plan = prepare(recipe)
    except TuiMergeError as error:
        return "skipped", f"the recipe's inputs are not at hand here ({error.message})"
    expected = {task.name: (task.shape, task.dtype) for task in plan.tasks}
    found = {name: (entry.shape, entry.dtype) for name, entry in info.stored_tensors.items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    different = sorted(name for name in set(expected) & set(found) if tuple(expected[name][0]) != found[name][0]
                       or expected[name][1] != found[name][1])  # fmt: skip
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {', '.join(missing[:_EXAMPLES])}")
    if extra:
        problems.append(f"unexpected {len(extra)}: {', '.join(extra[:_EXAMPLES])}")
    for name in different[:_EXAMPLES]:
        problems.append(f"{name} is {list(found[name][0])} {found[name][1]}, the recipe makes "
                        f"{list(expected[name][0])} {expected[name][1]}")  # fmt: skip
    if problems:
        return "failed", "tensors differ from what the recipe makes: " + "; ".join(problems)
    return "passed", f"all {len(expected)} tensors have the recipe's names, shapes and dtypes"


def _transformers(info) -> tuple[Outcome, str]:
    from tui_merge.models.architecture_fit import architecture_fit

    shapes = {name: entry.shape for name, entry in info.tensors.items()}
    fit = architecture_fit(info.facts.raw, shapes, source=info.folder / "config.json")
    problems = fit.problems()
    if problems:
        return "failed", f"{fit.model_class} does not fit the weights: " + "; ".join(problems)
    return "passed", f"{fit.model_class} takes every tensor with its shape"


def _probe(info) -> tuple[Outcome, str]:
    from tui_merge.config.loading import load_config
    from tui_merge.models.architecture_fit import is_causal_language_model
    from tui_merge.models.resolve import resolve_model
    from tui_merge.vocab.tokenizer import has_tokenizer

    if not is_causal_language_model(info.facts.raw):
        named = ", ".join(info.facts.architectures) or info.facts.model_type or "the model"
        return "skipped", f"{named} has no language-model head, so there is no next-token perplexity to measure"
    if not has_tokenizer(info.folder):
        return "skipped", "no tokenizer in the output, so there is no text to score"
    merged = perplexity(info.folder, info.folder)
    parents: dict[str, float] = {}
    recipe = info.folder / "tui_merge_config.yaml"
    if recipe.is_file():
        for name in load_config(recipe).config.referenced_models():
            try:
                folder = resolve_model(name).folder
            except TuiMergeError:
                continue
            tokenizer = folder if has_tokenizer(folder) else info.folder
            parents[name] = perplexity(folder, tokenizer)
    listing = ", ".join(f"{name} {value:.2f}" for name, value in parents.items()) or "not at hand"
    detail = f"perplexity on the built-in text: merge {merged:.2f}; parents: {listing}"
    if merged != merged or merged == float("inf"):
        return "failed", detail
    if parents and merged > 2 * max(parents.values()):
        return "failed", detail + " (the merge is more than twice as perplexed as its worst parent)"
    return "info", detail


def perplexity(model_folder: Path, tokenizer_folder: Path) -> float:
    """Perplexity of a causal language model on ``PROBE_TEXT`` (``evaluation.scoring``'s rule), on the CPU,
    with the tokenizer of ``tokenizer_folder`` (a parent without one borrows the merge's)."""
    from tui_merge.evaluation.scoring import load_causal_model
    from tui_merge.evaluation.scoring import perplexity as text_perplexity
    from tui_merge.vocab.tokenizer import load_tokenizer

    model, own_tokenizer = load_causal_model(model_folder, "cpu", with_tokenizer=tokenizer_folder == model_folder)
    tokenizer = own_tokenizer if tokenizer_folder == model_folder else load_tokenizer(tokenizer_folder)
    ids = tokenizer(PROBE_TEXT)["input_ids"]
    if max(ids) >= model.get_input_embeddings().weight.shape[0]:
        raise TuiMergeError(f"The tokenizer in {tokenizer_folder} produces ids past the embedding of {model_folder}.")
    return text_perplexity(model, tokenizer, PROBE_TEXT)[0]
