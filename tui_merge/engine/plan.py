"""Expand a config and its models into one task per output tensor, before anything is written.

Everything that can fail on bad input fails here: a model missing a tensor,
shapes that disagree, layer ranges beyond a model, the wrong number of models
for the method, a parameter with no value for some tensor. The plan also
knows every output shape and dtype, so it fixes the shard layout up front and
the writer can put each shard's header first and stream the data after it.

Output tensor names follow the reference model: the base, else the first
model (in slices mode, each slice's base source, else its first source).
Tensors outside the layers come from the first slice (embeddings) or the last
slice (final norm, head), as mergekit does. Non-float tensors (integer
buffers) are copied from the reference model unmerged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tui_merge.config.loading import LoadedConfig
from tui_merge.config.parameters import TensorPlace, layer_position, resolve
from tui_merge.config.schema import MergeConfig
from tui_merge.errors import BadInputError
from tui_merge.methods.registry import MethodSpec, get_method
from tui_merge.models.checkpoint import TensorEntry
from tui_merge.models.fused_experts import matrices_per_expert
from tui_merge.models.info import ModelInfo
from tui_merge.models.json_file import read_json_object
from tui_merge.models.safetensors_header import DTYPE_SIZES, FLOAT_DTYPES
from tui_merge.models.sentence_modules import sentence_module_files
from tui_merge.vocab.alignment import VocabAlignment
from tui_merge.vocab.strategy import VocabPlan, plan_vocabulary

OUTPUT_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
_WORKING_COPIES = 3
"""Float32 copies of a task's inputs alive at once while a kernel runs (inputs, deltas, result)."""


@dataclass(frozen=True)
class InputTensor:
    """One input of a task: which model, which stored tensor, and how to fit its rows."""

    model: str
    entry: TensorEntry
    rows: int | None = None
    """Rows to truncate or pad to when vocabularies differ; None to use as stored."""


@dataclass(frozen=True)
class TensorTask:
    """How to produce one output tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    """safetensors dtype of the output."""
    inputs: tuple[InputTensor, ...]
    """The method's inputs in config order (the base excluded when the method takes one)."""
    model_params: tuple[dict[str, Any], ...]
    base: InputTensor | None
    options: dict[str, Any]
    seed: int
    merge: bool = True
    """False for tensors copied as they are (integer buffers)."""
    vocab: VocabAlignment | None = None
    """For a vocabulary matrix whose rows match by token: where each row comes from in each model."""
    fill_from: tuple[InputTensor, ...] = ()
    """Matrices read only for their rows, when the method itself does not read them: the base's (it fills rows
    other models lack) and those of models a ``tokenizer.tokens`` override names."""
    quantize: tuple[int, int] | None = None
    """Block size when the merged tensor is written as block-scaled FP8 (``tui_merge.quantize: fp8``)."""
    scales_of: str | None = None
    """For the ``..._scale_inv`` tensor of a quantized output weight: that weight's name (its scales come from
    quantizing it)."""
    expert_matrices: int = 0
    """For a mixture of experts' matrices stored fused, one expert per index of the first dimension
    (``mlp.experts.gate_up_proj`` [experts, ...]): how many matrices each expert's slice concatenates (gate and
    up: 2), each merged as a tensor of its own, as per-expert checkpoints are; 0 for any other tensor."""

    @property
    def reads(self) -> tuple[InputTensor, ...]:
        """Every stored tensor the task reads."""
        return tuple(ref for ref in (*self.inputs, self.base, *self.fill_from) if ref is not None)

    @property
    def nbytes(self) -> int:
        """Bytes this tensor takes in the output."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count * DTYPE_SIZES[self.dtype]


@dataclass(frozen=True)
class Shard:
    """One output file and the tasks whose tensors it holds, in order."""

    file_name: str
    tasks: tuple[int, ...]
    size: int


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


def _quantized(tasks: tuple[TensorTask, ...], block: tuple[int, int]) -> tuple[TensorTask, ...]:
    """``tasks`` with every merged weight that came from block-scaled FP8 inputs written as FP8 again, each
    followed by the ``..._scale_inv`` tensor of its block scales (as the inputs store them)."""
    from tui_merge.models.quantization import SCALE_SUFFIX

    result = []
    for task in tasks:
        if not (task.merge and task.inputs and all(ref.entry.scale is not None for ref in task.inputs)):
            result.append(task)
            continue
        result.append(replace(task, dtype="F8_E4M3", quantize=block))
        scale_shape = tuple(-(-size // step) for size, step in zip(task.shape, block))
        result.append(replace(task, name=task.name + SCALE_SUFFIX, shape=scale_shape, dtype="F32",
                              scales_of=task.name))  # fmt: skip
    return tuple(result)


def tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed from the config seed and the output name: independent of order and threads."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


class _Planner:
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
            tasks = _quantized(tasks, quantize_block)
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
            shards=_layout_shards(tasks, self.config.tui_merge.shard_bytes),
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
        for name in _ordered_names(reference):
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

    # --- slices: layers stacked from ranges of models ----------------------------------------

    def _plan_slices(self) -> tuple[ModelInfo, int]:
        slices = self.config.slices or []
        references = [self._slice_reference(index, output_slice) for index, output_slice in enumerate(slices)]
        first, last = references[0], references[-1]
        options = self.config.tui_merge
        if options.embeddings_from:
            self._add_outside_tasks(options.embeddings_from, embeddings=True)
        for name in _ordered_names(first) if not options.embeddings_from else []:
            role = first.roles[name]
            if role.layer is None and role.component == "embed" and not first.in_tower(name):
                self._add_slice_task(0, name, name, 0.0, lambda source, name=name: name)
        for name in _ordered_names(first):
            role = first.roles[name]
            if first.in_tower(name):
                # Another stack (a vision tower, an audio encoder) with its embeddings and norms: the slices stack
                # the language model's layers, and the tower comes whole from the first slice's model.
                position = layer_position(role.layer, first.stack_depths.get(role.block_prefix, 1))
                self._add_slice_task(0, name, name, position, lambda source, name=name: name)
        output_layer = 0
        self.layer_sources = []
        for slice_index, (output_slice, reference) in enumerate(zip(slices, references)):
            start = self._reference_source(output_slice).layer_range[0]
            for offset in range(output_slice.length):
                self.layer_sources.append((reference, start + offset))
                position = layer_position(offset, output_slice.length)
                for name in _ordered_names(reference):
                    role = reference.roles[name]
                    if role.layer != start + offset or role.block_prefix != reference.block_prefix:
                        continue
                    prefix, layer = reference.block_prefix, start + offset
                    output_name = _rename_layer(name, prefix, layer, output_layer + offset)

                    def source_name(source, name=name, prefix=prefix, layer=layer, offset=offset) -> str:
                        return _rename_layer(name, prefix, layer, source.layer_range[0] + offset)

                    self._add_slice_task(slice_index, name, output_name, position, source_name)
            output_layer += output_slice.length
        if options.head_from:
            self._add_outside_tasks(options.head_from, embeddings=False)
        for name in _ordered_names(last) if not options.head_from else []:
            role = last.roles[name]
            if role.layer is None and role.component != "embed" and not last.in_tower(name):
                self._add_slice_task(len(slices) - 1, name, name, 0.0, lambda source, name=name: name)
        return first, output_layer

    def _add_outside_tasks(self, model: str, *, embeddings: bool) -> None:
        """The tensors before the layers (``embeddings``) or after them, copied from ``model`` (passthrough)."""
        info = self.models[model]
        key = "embeddings_from" if embeddings else "head_from"
        for name in _ordered_names(info):
            role = info.roles[name]
            if role.layer is None and (role.component == "embed") == embeddings:
                self._add_task(
                    name, info, TensorPlace(name, 0.0), inputs=[(model, name)], base=None,
                    levels={model: [self.config.parameters]}, global_levels=[self.config.parameters],
                    where=("tui_merge", key),
                )  # fmt: skip

    def _reference_source(self, output_slice: Any) -> Any:
        """The slice's base source, else its first: the one whose tensor names the output follows."""
        return next((s for s in output_slice.sources if s.model == self.config.base_model), output_slice.sources[0])

    def _slice_reference(self, slice_index: int, output_slice: Any) -> ModelInfo:
        for source_index, source in enumerate(output_slice.sources):
            depth = self.models[source.model].depth
            if source.layer_range[1] > depth:
                path = ("slices", slice_index, "sources", source_index, "layer_range")
                raise BadInputError(
                    f"{self.loaded.where(path)}: [{source.layer_range[0]}, {source.layer_range[1]}] goes beyond "
                    f"{source.model}'s {depth} layers (ranges are half-open: the last layer is {depth - 1})."
                )
        if self._uses_base() and all(source.model != self.config.base_model for source in output_slice.sources):
            raise BadInputError(
                f"{self.loaded.where(('slices', slice_index, 'sources'))}: {self.method.name} needs the base "
                f"model {self.config.base_model} among the sources of every slice."
            )
        return self.models[self._reference_source(output_slice).model]

    def _add_slice_task(
        self, slice_index: int, reference_name: str, output_name: str, position: float, source_name: Any
    ) -> None:
        """One output tensor of a slice: each source contributes its tensor ``source_name(source)``."""
        output_slice = (self.config.slices or [])[slice_index]
        inputs, levels, base = [], {}, None
        for source in output_slice.sources:
            if self._uses_base() and source.model == self.config.base_model:
                base = (source.model, source_name(source))
                continue
            key = f"{source.model}{_KEY_SEPARATOR}{id(source)}"
            inputs.append((key, source_name(source)))
            levels[key] = [
                source.parameters, output_slice.parameters, self.config.model_parameters(source.model),
                self.config.parameters,
            ]  # fmt: skip
        self._add_task(
            output_name, self.models[self._reference_source(output_slice).model], TensorPlace(output_name, position),
            inputs=inputs, base=base, levels=levels, global_levels=[output_slice.parameters, self.config.parameters],
            where=("slices", slice_index, "sources"), reference_name=reference_name,
        )  # fmt: skip

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
        tied_head = info.facts.tie_word_embeddings and _is_head_name(tensor_name) and info.embedding_name
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


_KEY_SEPARATOR = "\0"
"""Between a slice source's model and its identity in an input key: no path or hub id contains NUL (``#`` may)."""


def _generation_config(reference: ModelInfo) -> dict[str, Any] | None:
    path = reference.folder / "generation_config.json"
    return read_json_object(path, fix="correct or remove it") if path.is_file() else None


def _model_name(model_key: str) -> str:
    return model_key.split(_KEY_SEPARATOR, 1)[0]


def tie_truth(model: ModelInfo) -> tuple[bool | None, str | None]:
    """What ``model``'s tensors say of ``tie_word_embeddings`` where its config.json says otherwise: the value to
    write and the sentence for the log, else (None, None).

    A config that says tied while the checkpoint stores a head that differs from the embedding would make
    transformers throw the (merged) head away; one that says untied while no head is stored would make it
    start a random head. The tensors are the truth in both cases: the head stored is the one trained, and a
    causal language model without one uses its embedding. Two rows of each matrix tell a tied copy from a
    head of its own.
    """
    embedding = model.embedding_name
    if embedding is None:
        return None, None
    heads = sorted(name for name in model.tensors if _is_head_name(name) and name.endswith(".weight"))
    declared = model.facts.tie_word_embeddings
    config = model.folder / "config.json"
    if declared and heads and _differ(model, heads[0], embedding):
        return False, (
            f"{config} says tie_word_embeddings: true, but {heads[0]} differs from {embedding}; the output's "
            "config.json says false, so transformers keeps the merged head."
        )
    causal = any(name.endswith("ForCausalLM") for name in model.facts.architectures)
    if not declared and not heads and causal:
        return True, (
            f"{config} says tie_word_embeddings: false, but the weights store no head, so {embedding} is the "
            "head; the output's config.json says true, so transformers does not start a random head."
        )
    return None, None


def _differ(model: ModelInfo, head: str, embedding: str) -> bool:
    from tui_merge.models.reader import TensorReader

    first, second = model.tensors[head], model.tensors[embedding]
    if first.shape != second.shape or first.dtype != second.dtype:
        return True
    rows = first.shape[0]
    with TensorReader() as reader:
        return any(
            not bool((reader.read_rows(first, row, row + 1) == reader.read_rows(second, row, row + 1)).all())
            for row in sorted({0, rows // 2, rows - 1})
        )


def _is_head_name(name: str) -> bool:
    return name.startswith(("lm_head.", "embed_out.")) or ".lm_head." in name


def _ordered_names(model: ModelInfo) -> list[str]:
    """Embeddings first, then the blocks in order, then everything else: the order readers expect."""

    def key(name: str) -> tuple[int, int, str]:
        role = model.roles[name]
        if role.layer is not None and role.block_prefix == model.block_prefix:
            return (1, role.layer, name)
        return (0 if role.component == "embed" else 2, 0, name)

    return sorted(model.tensors, key=key)


def _rename_layer(name: str, prefix: str | None, old: int, new: int) -> str:
    if prefix is None:
        return name
    head = f"{prefix}.{old}."
    return f"{prefix}.{new}." + name[len(head) :] if name.startswith(head) else name


def _layout_shards(tasks: tuple[TensorTask, ...], limit: int) -> tuple[Shard, ...]:
    groups: list[list[int]] = [[]]
    sizes = [0]
    for index, task in enumerate(tasks):
        if groups[-1] and sizes[-1] + task.nbytes > limit:
            groups.append([])
            sizes.append(0)
        groups[-1].append(index)
        sizes[-1] += task.nbytes
    count = len(groups)
    names = (
        ["model.safetensors"]
        if count == 1
        else [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]
    )
    return tuple(Shard(name, tuple(group), size) for name, group, size in zip(names, groups, sizes))
