"""Expand a config and its models into one task per output tensor, before anything is written.

Everything that can fail on bad input fails here: a model missing a tensor,
shapes that disagree, layer ranges beyond a model, the wrong number of models
for the method, a parameter with no value for some tensor. The plan also
knows every output shape and dtype, so it fixes the shard layout up front
(``engine.tasks``).

Output tensor names follow the reference model: the base, else the first
model (in slices mode, each slice's base source, else its first source).
Tensors outside the layers come from the first slice (embeddings) or the last
slice (final norm, head), as mergekit does. Non-float tensors (integer
buffers) are copied from the reference model unmerged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tui_merge.config.loading import LoadedConfig
from tui_merge.config.parameters import TensorPlace, layer_position, resolve
from tui_merge.config.schema import MergeConfig
from tui_merge.engine.slice_plan import KEY_SEPARATOR, SlicePlanning, ordered_names
from tui_merge.engine.tasks import (
    OUTPUT_DTYPES,
    InputTensor,
    Shard,
    TensorTask,
    layout_shards,
    quantized_tasks,
    tensor_seed,
)
from tui_merge.engine.tied_head import is_head_name, tie_truth
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import get_method
from tui_merge.methods.spec import MethodSpec
from tui_merge.models.checkpoint import TensorEntry
from tui_merge.models.fused_experts import matrices_per_expert
from tui_merge.models.info import ModelInfo
from tui_merge.models.json_file import read_json_object
from tui_merge.models.safetensors_header import DTYPE_SIZES, FLOAT_DTYPES
from tui_merge.models.sentence_modules import sentence_module_files
from tui_merge.vocab.strategy import VocabPlan, plan_vocabulary

_WORKING_COPIES = 3
"""Float32 copies of a task's inputs alive at once while a kernel runs (inputs, deltas, result)."""


@dataclass(frozen=True)
class Plan:
    """Everything the executor and writer need, decided before the first byte is written."""

    loaded: LoadedConfig
    method: MethodSpec
    models: dict[str, ModelInfo]
    reference: ModelInfo
    """The model whose config.json and tokenizer the output starts from."""
    tasks: tuple[TensorTask, ...]
    shards: tuple[Shard, ...]
    num_layers: int
    vocab_rows: int | None
    out_dtype: str
    """torch name of the output dtype."""
    vocabulary: VocabPlan
    """How vocabularies are reconciled, and the output tokenizer."""
    generation_config: dict[str, Any] | None = None
    """The reference model's generation_config.json, read while planning (None when it has none)."""
    companion_source: Path | None = None
    """The model whose sentence-transformers files the output carries (``models.sentence_modules``)."""
    companions: tuple[str, ...] = ()
    """Those files and module folders, relative to ``companion_source``."""
    notes: tuple[str, ...] = ()
    """Other things the user should read in the run log (module weights copied unmerged)."""
    quantize_block: tuple[int, int] | None = None
    """The FP8 block size when the output is quantized again (``tui_merge.quantize: fp8``), else None."""
    layer_sources: tuple[tuple[ModelInfo, int], ...] | None = None
    """For a ``slices:`` merge, where each output layer comes from: the model whose layer names it follows and
    that model's layer; per-layer arrays of the output config follow it. None for a ``models:`` merge."""
    tie_word_embeddings: bool | None = None
    """The output's ``tie_word_embeddings`` where the reference's config.json lies about it (the tensors show
    the truth), else None: the config's own value stands."""
    warnings: tuple[str, ...] = ()
    """What the compatibility check warned about (``engine.job``), for the log and the model card."""

    @property
    def config(self) -> MergeConfig:
        """The merge config."""
        return self.loaded.config

    @property
    def bytes_to_write(self) -> int:
        """Total tensor bytes of the output."""
        return sum(task.nbytes for task in self.tasks)

    @property
    def bytes_to_read(self) -> int:
        """Tensor bytes read from the inputs (each input tensor once per use)."""
        return sum(ref.entry.nbytes for task in self.tasks for ref in task.reads)

    @property
    def peak_bytes(self) -> int:
        """Estimated memory for the largest task: its inputs in float32, a few working copies."""
        largest = max((task.nbytes // DTYPE_SIZES[task.dtype] for task in self.tasks), default=0)
        inputs = max((len(task.reads) for task in self.tasks), default=0)
        return largest * 4 * (inputs + _WORKING_COPIES)


def build_plan(loaded: LoadedConfig, models: dict[str, ModelInfo]) -> Plan:
    """Plan the merge of ``loaded`` over the inspected ``models`` (keyed by config name)."""
    return _Planner(loaded, models).build()


_FUSED_EXPERTS = re.compile(r"\.experts\.(?!\d)[^.]+$")
"""Experts stored fused in one tensor (``mlp.experts.gate_up_proj``, its ``_bias``), not one module per expert
(``mlp.experts.3.w1.weight``): the first dimension counts the experts."""


class _Planner(SlicePlanning):
    def __init__(self, loaded: LoadedConfig, models: dict[str, ModelInfo]) -> None:
        if loaded.config.modules is not None:
            from tui_merge.config.modules import expand_modules

            loaded = expand_modules(loaded, models[loaded.config.referenced_models()[0]])
        self.loaded = loaded
        self.config = loaded.config
        self.method = get_method(self.config.merge_method)
        self.models = models
        self.tasks: list[TensorTask] = []
        self.layer_sources: list[tuple[ModelInfo, int]] | None = None

    def build(self) -> Plan:
        self.vocabulary = plan_vocabulary(self.loaded, self.models)
        if self.config.models is not None:
            reference = self.models[self.config.base_model or self.config.models[0].model]
            num_layers = self._plan_models(reference)
        else:
            reference, num_layers = self._plan_slices()
        out_dtype = self.config.output_dtype or reference.weight_dtype or "float32"
        if out_dtype not in OUTPUT_DTYPES:
            out_dtype = "float32"
        tasks = tuple(self._with_dtype(task, out_dtype) for task in self.tasks)
        quantize_block = self._quantize_block(reference)
        if quantize_block is not None:
            tasks = quantized_tasks(tasks, quantize_block)
        tokenizer = self.vocabulary.tokenizer
        companion_source = tokenizer.source if tokenizer is not None else reference.folder
        companions, notes = sentence_module_files(companion_source)
        tie, correction = tie_truth(reference)
        if correction:
            notes = [*notes, correction]
        return Plan(
            loaded=self.loaded,
            method=self.method,
            models=self.models,
            reference=reference,
            tasks=tasks,
            shards=layout_shards(tasks, self.config.tui_merge.shard_bytes),
            num_layers=num_layers,
            vocab_rows=self._output_vocab_rows(tasks, reference),
            out_dtype=out_dtype,
            vocabulary=self.vocabulary,
            generation_config=_generation_config(reference),
            companion_source=companion_source,
            companions=companions,
            notes=tuple(notes),
            quantize_block=quantize_block,
            tie_word_embeddings=tie,
            layer_sources=tuple(self.layer_sources) if self.layer_sources is not None else None,
        )

    def _quantize_block(self, reference: ModelInfo) -> tuple[int, int] | None:
        """The block size of ``tui_merge.quantize: fp8``: the inputs' own, which all must share."""
        if self.config.tui_merge.quantize is None:
            return None
        blocks = {
            model.label: model.quantization.block if model.quantization is not None else None
            for model in self.models.values()
        }
        plain = [label for label, block in blocks.items() if block is None]
        if plain or len(set(blocks.values())) != 1:
            found = ", ".join(f"{label}: {list(block) if block else 'not block-scaled FP8'}" for label, block in
                              blocks.items())  # fmt: skip
            raise BadInputError(
                f"{self.loaded.where(('tui_merge', 'quantize'))}: quantize: fp8 quantizes the merge with the block "
                f"size of its block-scaled FP8 inputs, and these do not share one ({found}); remove quantize to "
                "write the merge unquantized."
            )
        return reference.quantization.block

    # --- models: every layer from every model ------------------------------------------------

    def _plan_models(self, reference: ModelInfo) -> int:
        entries = self.config.models or []
        params_by_model = {entry.model: entry.parameters for entry in entries}
        input_names = self._input_names([entry.model for entry in entries])
        depth = reference.depth
        for name in ordered_names(reference):
            role = reference.roles[name]
            # A gradient runs over each stack's own depth: a vision tower's last layer is its stack's end too.
            stack_depth = reference.stack_depths.get(role.block_prefix, depth) if role.block_prefix else depth
            place = TensorPlace(name, layer_position(role.layer, stack_depth))
            levels = {
                model: [params_by_model.get(model, {}), self.config.model_parameters(model), self.config.parameters]
                for model in input_names
            }
            self._add_task(
                name, reference, place,
                inputs=[(model, name) for model in input_names],
                base=(self.config.base_model, name) if self._uses_base() else None,
                levels=levels, global_levels=[self.config.parameters],
                where=("models",),
            )  # fmt: skip
        return depth

    # --- shared ------------------------------------------------------------------------------

    def _uses_base(self) -> bool:
        return self.method.base != "none" and self.config.base_model is not None

    def _input_names(self, listed: list[str]) -> list[str]:
        if self.method.base == "none" or self.config.base_model is None:
            return listed
        return [name for name in listed if name != self.config.base_model]

    def _add_task(
        self,
        name: str,
        reference: ModelInfo,
        place: TensorPlace,
        *,
        inputs: list[tuple[str, str]],
        base: tuple[str, str] | None,
        levels: dict[str, list[dict[str, Any]]],
        global_levels: list[dict[str, Any]],
        where: tuple,
        reference_name: str | None = None,
    ) -> None:
        stored = reference.tensors[reference_name or name]
        if stored.dtype not in FLOAT_DTYPES:
            ref = InputTensor(reference.label, stored)
            self.tasks.append(TensorTask(name, stored.shape, stored.dtype, (ref,), ({},), None, {}, 0, merge=False))
            return
        refs = [self._input(model_key, tensor_name, stored) for model_key, tensor_name in inputs]
        base_ref = self._input(base[0], base[1], stored) if base else None
        model_params = []
        for model_key, _ in inputs:
            values = {}
            for spec in self.method.params:
                if spec.scope != "model":
                    continue
                value = resolve(spec.name, levels[model_key], place, spec.default)
                if value is None:
                    raise BadInputError(
                        f"{self.loaded.where(where)}: parameter {spec.name} of {_model_name(model_key)} has no value "
                        f"for tensor {name}; add a condition without filter as a catch-all."
                    )
                values[spec.name] = value
            model_params.append(values)
        options = {}
        for spec in self.method.params:
            if spec.scope != "global":
                continue
            value = resolve(spec.name, global_levels, place, spec.default)
            if value is None:
                raise BadInputError(
                    f"{self.loaded.where(('parameters',))}: parameter {spec.name} has no value for tensor {name}; "
                    "add a condition without filter as a catch-all."
                )
            options[spec.name] = value
        seed = tensor_seed(self.config.tui_merge.seed, name)
        task = TensorTask(name, stored.shape, stored.dtype, tuple(refs), tuple(model_params), base_ref, options, seed)
        task = self._fit_rows(task, reference)
        if (
            _FUSED_EXPERTS.search(name)
            and len(task.shape) >= 2
            and task.vocab is None
            and all(
                ref.entry.begin is not None and ref.entry.lora is None and ref.entry.scale is None and ref.rows is None
                for ref in task.reads
            )
        ):
            matrices = matrices_per_expert(reference.facts.model_type, name)
            task = replace(task, expert_matrices=matrices if task.shape[1] % matrices == 0 else 1)
        self.tasks.append(task)

    def _input(self, model_key: str, tensor_name: str, reference_entry: TensorEntry) -> InputTensor:
        model = _model_name(model_key)
        info = self.models[model]
        entry = info.tensors.get(tensor_name)
        tied_head = info.facts.tie_word_embeddings and is_head_name(tensor_name) and info.embedding_name
        if entry is None and tied_head:
            # A tied model stores no head: its embedding matrix is the head.
            entry = info.tensors[info.embedding_name]
        if entry is None:
            raise BadInputError(
                f"Model {model} has no tensor {tensor_name}, which the merge needs; the models do not share "
                "a layout (run tui-merge inspect on them)."
            )
        return InputTensor(model, entry)

    def _fit_rows(self, task: TensorTask, reference: ModelInfo) -> TensorTask:
        refs = [*task.inputs, *([task.base] if task.base else [])]
        alignment = self.vocabulary.alignment
        if alignment is not None and task.merge and self._vocabulary_shaped(refs):
            wanted = [alignment.base, *(override.model for override in alignment.overrides)]
            read = {ref.model for ref in refs}
            fill_from = []
            for model in dict.fromkeys(name for name in wanted if name and name not in read):
                extra = self._input(model, task.name, task.inputs[0].entry)
                if self._vocabulary_shaped([extra]):
                    fill_from.append(extra)
            return replace(task, shape=(alignment.rows, *task.shape[1:]), vocab=alignment, fill_from=tuple(fill_from))
        shapes = {ref.entry.shape for ref in refs}
        if len(shapes) == 1 and task.shape in shapes:
            return task
        tails = {shape[1:] for shape in shapes | {task.shape}}
        vocab_like = len(tails) == 1 and all(len(shape) >= 1 for shape in shapes)
        listing = ", ".join(f"{ref.model}: {list(ref.entry.shape)}" for ref in refs)
        if not vocab_like or not self._vocabulary_shaped(refs) or self.vocabulary.rows is None:
            raise BadInputError(
                f"Tensor {task.name} has different shapes ({listing}); these models cannot be merged "
                "(run tui-merge inspect on them)."
            )
        rows = self.vocabulary.rows
        shape = (rows, *task.shape[1:])

        def fit(ref: InputTensor) -> InputTensor:
            return InputTensor(ref.model, ref.entry, rows if ref.entry.shape[0] != rows else None)

        inputs = tuple(fit(ref) for ref in task.inputs)
        return replace(task, shape=shape, inputs=inputs, base=fit(task.base) if task.base else None)

    def _vocabulary_shaped(self, refs: list[InputTensor]) -> bool:
        """True for a matrix outside the layers whose rows are each model's vocabulary (embeddings, head, biases)."""
        for ref in refs:
            info = self.models[ref.model]
            role = info.roles.get(ref.entry.name)
            if not ref.entry.shape or ref.entry.shape[0] != info.vocab_rows:
                return False
            if role is not None and (role.layer is not None or role.component == "norm"):
                return False
        return True

    def _with_dtype(self, task: TensorTask, out_dtype: str) -> TensorTask:
        if not task.merge:
            return task
        return replace(task, dtype=OUTPUT_DTYPES[out_dtype])

    def _output_vocab_rows(self, tasks: tuple[TensorTask, ...], reference: ModelInfo) -> int | None:
        if reference.embedding_name is None:
            return reference.facts.vocab_size
        for task in tasks:
            if task.name == reference.embedding_name:
                return task.shape[0]
        return reference.vocab_rows


def _generation_config(reference: ModelInfo) -> dict[str, Any] | None:
    path = reference.folder / "generation_config.json"
    return read_json_object(path, fix="correct or remove it") if path.is_file() else None


def _model_name(model_key: str) -> str:
    return model_key.split(KEY_SEPARATOR, 1)[0]
