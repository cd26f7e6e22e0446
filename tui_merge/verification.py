"""Check a merged model folder before anyone spends GPU hours on it: ``tui-merge verify OUT``.

The checks stream the weights one tensor at a time (never a whole model in
memory) and build the transformers model on the meta device, which checks
names and shapes against the architecture without allocating its weights:

- weights: every header and the index read cleanly (no missing shard, no
  tensor the index places in the wrong file);
- index: no shard file the index leaves out, no tensor a shard holds that the
  index does not list;
- finite: every floating-point tensor is free of NaN and Inf;
- config: ``config.json``'s layer count and vocabulary size match the
  weights, the tokenizer has no id past the embedding's rows, and the
  special token ids fit;
- recipe: when ``tui_merge_config.yaml`` is there and its input models are
  at hand, every tensor has the name, shape and dtype that recipe implies;
- transformers: the architecture in ``config.json`` expects exactly these
  tensors with these shapes (tied heads and non-persistent buffers aside).

``probe`` adds a perplexity comparison of the merge and its parents on a
built-in text; it loads each model in turn, so it needs the memory of the
largest one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tui_merge.errors import TuiMergeError

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
    if not index.is_file():
        return "passed", "single file, no index"
    listed = {entry.file.name for entry in info.tensors.values()}
    present = {path.name for path in info.folder.glob("*.safetensors")}
    stray = sorted(present - listed)
    if stray:
        return "failed", f"{len(stray)} shard file(s) the index leaves out: {', '.join(stray[:_EXAMPLES])}"
    unlisted = []
    for name in sorted(listed):
        unlisted += [tensor for tensor in read_safetensors_header(info.folder / name) if tensor not in info.tensors]
    if unlisted:
        return "failed", f"{len(unlisted)} tensor(s) the index does not list: {', '.join(unlisted[:_EXAMPLES])}"
    return "passed", f"{len(listed)} shards, every tensor listed once"


def _finite(info) -> tuple[Outcome, str]:
    from tui_merge.engine.executor import all_finite
    from tui_merge.engine.reader import TensorReader

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
    if bad:
        return "failed", f"{len(bad)} tensor(s) hold NaN or Inf: {', '.join(bad[:_EXAMPLES])}"
    return "passed", f"{checked} floating-point tensors, all finite"


def _config(info) -> tuple[Outcome, str]:
    from tui_merge.vocab.tokenizer import tokenizer_facts

    problems = []
    facts = info.facts
    if facts.num_layers is not None and info.depth and facts.num_layers != info.depth:
        problems.append(f"config.json says {facts.num_layers} layers, the weights have {info.depth}")
    rows = info.vocab_rows if info.embedding_name else None
    if rows is not None and facts.vocab_size is not None and facts.vocab_size != rows:
        problems.append(f"config.json says vocab_size {facts.vocab_size}, the embedding has {rows} rows")
    tokenizer = tokenizer_facts(info.folder)
    if tokenizer is not None and rows is not None and tokenizer.size > rows:
        problems.append(f"the tokenizer has ids up to {tokenizer.size - 1}, past the embedding's {rows} rows")
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        values = facts.raw.get(key)
        values = values if isinstance(values, list) else [values]
        if rows is not None and any(isinstance(value, int) and value >= rows for value in values):
            problems.append(f"config.json's {key} {facts.raw.get(key)} is past the embedding's {rows} rows")
    if problems:
        return "failed", "; ".join(problems)
    tokens = f", tokenizer of {tokenizer.size} ids" if tokenizer is not None else ", no tokenizer"
    return "passed", f"{info.depth} layers, {rows} vocabulary rows{tokens}"


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
    found = {name: (entry.shape, entry.dtype) for name, entry in info.tensors.items()}
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
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        config = transformers.AutoConfig.from_pretrained(str(info.folder), local_files_only=True)
        auto = transformers.AutoModelForCausalLM if _is_causal(config) else transformers.AutoModel
        with torch.device("meta"):
            model = auto.from_config(config)
    except Exception as error:  # transformers raises many kinds; each means the architecture cannot be built
        return "failed", f"transformers cannot build {info.folder}/config.json ({type(error).__name__}: {error})"
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    renames = _renames(model)
    tied = set(getattr(model, "all_tied_weights_keys", None) or {}) | set(
        getattr(model, "_tied_weights_keys", None) or []
    )
    stored = {_loading_name(name, renames): entry.shape for name, entry in info.tensors.items()}
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and not (set(stored) & set(expected)):
        stored = {f"{prefix}.{name}": shape for name, shape in stored.items()}
    missing = sorted(name for name in set(expected) - set(stored) if name not in tied)
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(name for name in set(expected) & set(stored) if expected[name] != tuple(stored[name]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:_EXAMPLES])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:_EXAMPLES])})")
    if wrong:
        problems.append(
            ", ".join(f"{name} is {list(stored[name])}, expected {list(expected[name])}" for name in wrong[:_EXAMPLES])
        )
    if problems:
        return "failed", f"{type(model).__name__} does not fit the weights: " + "; ".join(problems)
    return "passed", f"{type(model).__name__} takes every tensor with its shape"


def _renames(model) -> list[tuple[str, str]]:
    """The checkpoint key renamings transformers applies when it loads this model (old names in old checkpoints).

    Read from transformers' conversion mapping where it offers one; without
    it, names are compared as stored.
    """
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping

        transforms = get_model_conversion_mapping(model)
    except Exception:  # an older or newer transformers without this mapping: compare names as stored
        return []
    renames = []
    for transform in transforms:
        sources, targets = getattr(transform, "source_patterns", None), getattr(transform, "target_patterns", None)
        if type(transform).__name__ == "WeightRenaming" and len(sources or []) == 1 and len(targets or []) == 1:
            renames.append((sources[0], targets[0]))
    return renames


def _loading_name(name: str, renames: list[tuple[str, str]]) -> str:
    import re

    for pattern, replacement in renames:
        renamed = re.sub(pattern, replacement, name)
        if renamed != name:
            return renamed
    return name


def _is_causal(config) -> bool:
    import transformers

    return type(config) in transformers.AutoModelForCausalLM._model_mapping


def _probe(info) -> tuple[Outcome, str]:
    from tui_merge.config.loading import load_config
    from tui_merge.models.resolve import resolve_model
    from tui_merge.vocab.tokenizer import has_tokenizer

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
    """Perplexity of a causal language model on ``PROBE_TEXT``."""
    import torch
    import transformers

    from tui_merge.vocab.tokenizer import load_tokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = load_tokenizer(tokenizer_folder)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(model_folder), local_files_only=True)
    except Exception as error:  # transformers raises many kinds; each means the model cannot be loaded
        raise TuiMergeError(f"transformers cannot load {model_folder} ({type(error).__name__}: {error})") from error
    ids = tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"]
    if int(ids.max()) >= model.get_input_embeddings().weight.shape[0]:
        raise TuiMergeError(f"The tokenizer in {tokenizer_folder} produces ids past the embedding of {model_folder}.")
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss
    return float(torch.exp(loss))
