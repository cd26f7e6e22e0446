"""``extract-lora``: a PEFT LoRA adapter that turns a base model into a fine-tune, from the SVD of their difference.

mergekit-extract-lora's work, on this engine's reader: per linear module, ``FT - BASE`` in float32 (on CUDA when
there is one) and its truncated SVD ``U S Vh`` give ``lora_A = sqrt(S_r) Vh_r`` and ``lora_B = U_r sqrt(S_r)``
(``--no-distribute-scale``: ``S_r Vh_r`` and ``U_r``), with ``lora_alpha = r`` so PEFT's scale is 1 and
``BASE + B @ A`` is the best rank-``r`` approximation of FT. The rank per module is ``--max-rank`` (mergekit's
default, 128), lowered to the singular values above ``--sv-epsilon`` (absolute, as mergekit) and to those at
least ``--relative-threshold`` times the module's largest; a module whose difference is zero is left out. The
embeddings and the head are saved whole (``modules_to_save``, as mergekit does), as are the modules
``--save-module`` names; ``-i``/``-e`` regexes pick the linear modules by name. A norm or another tensor that
is not a matrix and differs is saved whole (``--skip-undecomposable`` leaves it out), a bias that differs too
(PEFT's ``bias: all``).

Only the two tensors in hand are in memory: each piece of the adapter is appended to a data file in
``OUT.partial`` as it is computed, and ``adapter_model.safetensors`` is written from it at the end, so memory
does not grow with the model. The adapter appears at ``OUT`` whole, or not at all; a stop (Ctrl-C, SIGTERM) keeps
the finished tensors with a journal (``extract_journal``) and ``--resume`` goes on with the next one.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tui_merge.engine.lock import OutputLock, partial_path
from tui_merge.engine.merge_errors import MergeInterrupted
from tui_merge.engine.preflight import output_overlaps_input
from tui_merge.engine.tied_head import is_head_name
from tui_merge.engine.writer import move_into_place, write_synced
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo
from tui_merge.models.safetensors_header import FLOAT_DTYPES
from tui_merge.tools.extract_journal import JOURNAL, ExtractionJournal, extraction_fingerprint
from tui_merge.tools.inputs import require_downloaded

ADAPTER_WEIGHTS = "adapter_model.safetensors"
_DATA = ".adapter-data"
_TORCH_NAMES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}

Treatment = Literal["lora", "whole", "skip"]


@dataclass(frozen=True)
class ExtractionOptions:
    """How the adapter is cut; the defaults are mergekit-extract-lora's."""

    max_rank: int = 128
    sv_epsilon: float = 0.0
    relative_threshold: float = 0.0
    modules_to_save: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    distribute_scale: bool = True
    skip_undecomposable: bool = False
    dtype: str | None = None
    """torch name of the adapter's dtype; None: the fine-tune's own."""
    device: str = "auto"


@dataclass(frozen=True)
class ModuleResult:
    """What became of one tensor of the fine-tune."""

    name: str
    treatment: Treatment
    rank: int = 0
    """The rank kept (LoRA modules)."""
    captured: float = 1.0
    """The fraction of the difference's Frobenius norm the kept rank holds (1 for what is saved whole)."""
    error: float = 0.0
    """The Frobenius norm of the difference the kept rank leaves out: the tail singular values."""
    reason: str = ""


@dataclass
class ExtractionSummary:
    """The whole extraction."""

    output: Path
    modules: list[ModuleResult] = field(default_factory=list)
    bytes_written: int = 0

    @property
    def lora(self) -> list[ModuleResult]:
        return [module for module in self.modules if module.treatment == "lora"]


def check_options(options: ExtractionOptions) -> None:
    """Refuse options that cannot cut an adapter, each in one sentence."""
    if options.max_rank < 1:
        raise BadInputError(f"--max-rank {options.max_rank}: the rank must be a whole number of at least 1.")
    if not 0.0 <= options.relative_threshold <= 1.0:
        raise BadInputError(
            f"--relative-threshold {options.relative_threshold}: give a fraction of the largest singular value "
            "between 0 and 1."
        )
    if options.sv_epsilon < 0 or not math.isfinite(options.sv_epsilon):
        raise BadInputError(f"--sv-epsilon {options.sv_epsilon}: give a singular value of 0 or more.")
    if options.dtype is not None and options.dtype not in _TORCH_NAMES:
        raise BadInputError(f"--dtype {options.dtype}: choose one of {', '.join(_TORCH_NAMES)}.")
    for flag, patterns in (("--include-regex", options.include), ("--exclude-regex", options.exclude)):
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise BadInputError(f"{flag} {pattern!r} is not a regular expression ({error}).") from None


def treatments(base: ModelInfo, tuned: ModelInfo, options: ExtractionOptions) -> dict[str, tuple[Treatment, str]]:
    """What each tensor of the fine-tune becomes, with the reason, decided from the headers before any is read."""
    if base.facts.model_type != tuned.facts.model_type:
        raise BadInputError(
            f"{tuned.label} is a {tuned.facts.model_type} and {base.label} a {base.facts.model_type}; an adapter "
            "extracts what a fine-tune changed in its own base: give the model it was fine-tuned from."
        )
    saved = set(options.modules_to_save)
    decided: dict[str, tuple[Treatment, str]] = {}
    for name, entry in tuned.tensors.items():
        module, _, kind = name.rpartition(".")
        role = tuned.roles.get(name)
        stored = base.tensors.get(name)
        if entry.dtype not in FLOAT_DTYPES:
            decided[name] = ("skip", "not a floating-point tensor")
        elif module in saved or module.rpartition(".")[2] in saved:
            decided[name] = ("whole", "--save-module")
        elif (role is not None and role.layer is None and role.component == "embed") or is_head_name(name):
            decided[name] = ("whole", "embeddings and head are saved whole")
        elif stored is None:
            decided[name] = ("whole", f"{base.label} has no such tensor")
        elif stored.shape != entry.shape:
            raise BadInputError(
                f"{name} is {list(entry.shape)} in {tuned.label} but {list(stored.shape)} in {base.label}; the "
                f"fine-tune does not share its base's shape there (run tui-merge inspect on them), or save that "
                f"module whole with --save-module {module.rpartition('.')[2]}."
            )
        elif options.include and not any(re.search(pattern, module) for pattern in options.include):
            decided[name] = ("skip", "not matched by --include-regex")
        elif any(re.search(pattern, module) for pattern in options.exclude):
            decided[name] = ("skip", "matched by --exclude-regex")
        elif kind == "weight" and len(entry.shape) == 2:
            decided[name] = ("lora", "")
        elif kind == "bias" or not options.skip_undecomposable:
            decided[name] = ("whole", "a bias" if kind == "bias" else "not a matrix")
        else:
            decided[name] = ("skip", "not a matrix (--skip-undecomposable)")
    return decided


def low_rank(delta, options: ExtractionOptions):
    """``(A, B, rank, captured, error)`` for a float32 difference matrix: its truncated SVD as LoRA factors."""
    import torch

    u, s, vh = torch.linalg.svd(delta, full_matrices=False)
    rank = min(options.max_rank, s.shape[0])
    if options.sv_epsilon > 0:
        rank = min(rank, int((s > options.sv_epsilon).sum()))
    if options.relative_threshold > 0:
        rank = min(rank, int((s >= options.relative_threshold * s[0]).sum()))
    rank = max(rank, 1)
    energy = s.double() ** 2
    total = float(energy.sum())
    captured = math.sqrt(float(energy[:rank].sum()) / total) if total else 1.0
    error = math.sqrt(float(energy[rank:].sum()))
    kept = s[:rank]
    if options.distribute_scale:
        root = kept.sqrt()
        a, b = root[:, None] * vh[:rank], u[:, :rank] * root[None, :]
    else:
        a, b = kept[:, None] * vh[:rank], u[:, :rank]
    return a, b, rank, captured, error


def extract_lora(
    base: ModelInfo,
    tuned: ModelInfo,
    output: Path,
    options: ExtractionOptions,
    *,
    base_reference: str,
    force: bool = False,
    resume: bool = False,
    again: str = "tui-merge extract-lora ...",
    on_module: Callable[[ModuleResult, int, int], None] | None = None,
) -> ExtractionSummary:
    """Cut the adapter and move it to ``output``; ``on_module(result, done, total)`` after each tensor."""
    import torch

    from tui_merge.devices import resolve_device
    from tui_merge.models.reader import TensorReader

    check_options(options)
    require_downloaded([base, tuned], "extract-lora")
    overlap = output_overlaps_input(output, [base, tuned])
    if overlap is not None:
        raise BadInputError(overlap)
    plan = treatments(base, tuned, options)
    _check_kinship(base, tuned)
    device = resolve_device(options.device, "--device")
    dtype_name = options.dtype or tuned.weight_dtype or "float32"
    out_dtype = getattr(torch, dtype_name if dtype_name in _TORCH_NAMES else "float32")
    summary = ExtractionSummary(output)
    fingerprint = extraction_fingerprint(options, device, [base, tuned])
    with OutputLock(output):
        _check_output(output, force, resume, again)
        partial = partial_path(output)
        if resume:
            journal = ExtractionJournal.load(partial, fingerprint)
        else:
            partial.mkdir(parents=True)
            journal = ExtractionJournal.create(partial, fingerprint)
        try:
            header: dict[str, object] = {"__metadata__": {"format": "pt"}}
            for record in journal.done.values():
                header.update(record["entries"])
                summary.modules.append(ModuleResult(**record["result"]))
            offset = journal.end
            (partial / _DATA).touch()
            with (partial / _DATA).open("r+b") as data, TensorReader() as reader:
                data.truncate(offset)  # what a stop cut short goes; the recorded pieces stay
                data.seek(offset)
                pieces: dict[str, object] = {}

                def put(key: str, tensor: torch.Tensor) -> None:
                    nonlocal offset
                    tensor = tensor.detach().to("cpu", out_dtype).contiguous()
                    raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
                    pieces[key] = {"dtype": _TORCH_NAMES[dtype_name], "shape": list(tensor.shape),
                                   "data_offsets": [offset, offset + len(raw)]}  # fmt: skip
                    data.write(raw)
                    offset += len(raw)

                total = len(plan)
                for done, (name, (treatment, reason)) in enumerate(sorted(plan.items()), 1):
                    if name in journal.done:
                        continue
                    pieces.clear()
                    result = _extract_one(name, treatment, reason, base, tuned, reader, device, options, put)
                    data.flush()
                    os.fsync(data.fileno())
                    journal.record(name, result, dict(pieces), offset)
                    header.update(pieces)
                    summary.modules.append(result)
                    if on_module is not None:
                        on_module(result, done, total)
            if not summary.lora:
                raise BadInputError(
                    f"{tuned.label} equals {base.label} in every linear module the options leave in; there is nothing "
                    "to extract as LoRA (check --include-regex and --exclude-regex, or the two models)."
                )
            summary.modules.sort(key=lambda module: module.name)
            summary.bytes_written = _write_weights(partial, header, offset)
            _write_config(partial, summary, base_reference)
            (partial / JOURNAL).unlink()
            move_into_place(partial, output, replace=force)
        except KeyboardInterrupt:
            raise MergeInterrupted(f"stopped; nothing is at {output} yet, {len(journal.done)} of {len(plan)} tensors "
                                   f"are kept in {partial}: continue with {again} --resume") from None  # fmt: skip
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return summary


def _check_kinship(base: ModelInfo, tuned: ModelInfo) -> None:
    """The merge's own findings (architecture, widths, depth, lineage): an adapter only makes sense from a model
    to its own fine-tune, so what would block their merge blocks the extraction."""
    from tui_merge.compatibility.check import check_compatibility

    report = check_compatibility([base, tuned], base)
    errors = [finding for finding in report.findings if finding.severity == "error"]
    if errors:
        raise BadInputError(f"{errors[0].message} An adapter extracts what a fine-tune changed in its own base.")


def _check_output(output: Path, force: bool, resume: bool, again: str) -> None:
    from tui_merge.engine.preflight import check_output_safety

    check_output_safety(output, force=force)
    leftover = partial_path(output)
    if resume and not leftover.is_dir():
        raise BadInputError(f"There is no interrupted extraction to resume at {leftover}; run without --resume.")
    if leftover.exists() and not resume:
        raise BadInputError(f"{leftover} is left from an interrupted extraction; continue it with {again} --resume, "
                            f"or remove it (rm -r {leftover}) and run again.")  # fmt: skip
    if output.exists() and any(output.iterdir()) and not force:
        raise BadInputError(f"{output} already exists and is not empty; choose another folder, or pass --force.")


def _extract_one(name, treatment, reason, base, tuned, reader, device, options, put) -> ModuleResult:
    import torch

    if treatment == "skip":
        return ModuleResult(name, "skip", reason=reason)
    tensor = reader.read(tuned.tensors[name]).to(device=device, dtype=torch.float32)
    stored = base.tensors.get(name)
    original = reader.read(stored).to(device=device, dtype=torch.float32) if stored is not None else None
    if original is not None and original.shape == tensor.shape and torch.equal(original, tensor):
        return ModuleResult(name, "skip", reason="unchanged")
    if treatment == "whole":
        put(f"base_model.model.{name}", tensor)
        return ModuleResult(name, "whole", reason=reason)
    delta = tensor - original
    del tensor, original
    a, b, rank, captured, error = low_rank(delta, options)
    module = name.removesuffix(".weight")
    put(f"base_model.model.{module}.lora_A.weight", a)
    put(f"base_model.model.{module}.lora_B.weight", b)
    return ModuleResult(name, "lora", rank, captured, error)


def _write_weights(partial: Path, header: dict[str, object], size: int) -> int:
    """``adapter_model.safetensors`` from the data file: the header first, then the bytes as they were appended."""
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    target = partial / ADAPTER_WEIGHTS
    with target.open("xb") as handle, (partial / _DATA).open("rb") as data:
        handle.write(len(encoded).to_bytes(8, "little") + encoded)
        shutil.copyfileobj(data, handle, 16 << 20)
        handle.flush()
        os.fsync(handle.fileno())
    (partial / _DATA).unlink()
    return 8 + len(encoded) + size


def _write_config(partial: Path, summary: ExtractionSummary, base_reference: str) -> None:
    """adapter_config.json as PEFT reads it: ``r`` the largest rank, ``rank_pattern``/``alpha_pattern`` for the
    modules cut lower, ``lora_alpha = r`` everywhere (scale 1)."""
    ranks = {module.name.removesuffix(".weight"): module.rank for module in summary.lora}
    top = max(ranks.values(), default=1)
    lower = {module: rank for module, rank in ranks.items() if rank != top}
    whole = [module for module in summary.modules if module.treatment == "whole"]
    saved = sorted({module.name.rpartition(".")[0].rpartition(".")[2] for module in whole
                    if not module.name.endswith(".bias") or module.reason == "--save-module"})  # fmt: skip
    settings = {
        "base_model_name_or_path": base_reference,
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": top,
        "lora_alpha": top,
        "rank_pattern": lower,
        "alpha_pattern": lower,
        "target_modules": sorted({module.rpartition(".")[2] for module in ranks}),
        "modules_to_save": saved or None,
        "bias": "all" if any(module.name.endswith(".bias") for module in whole) else "none",
        "use_rslora": False,
        "lora_dropout": 0.0,
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    write_synced(partial / "adapter_config.json", json.dumps(settings, indent=2) + "\n")
