"""Planning a ``slices:`` merge: layers stacked from ranges of models, the tensors outside the layers from the
first slice (embeddings) or the last (final norm, head), a vision tower whole from the first slice's model.

The half of the planner (``engine.plan``) that a ``models:`` merge does not need, mixed into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tui_merge.config.loading import LoadedConfig
from tui_merge.config.parameters import TensorPlace, layer_position
from tui_merge.config.schema import MergeConfig
from tui_merge.errors import BadInputError
from tui_merge.methods.spec import MethodSpec
from tui_merge.models.info import ModelInfo

KEY_SEPARATOR = "\0"
"""Between a slice source's model and its identity in an input key: no path or hub id contains NUL (``#`` may)."""


def ordered_names(model: ModelInfo) -> list[str]:
    """Embeddings first, then the blocks in order, then everything else: the order readers expect."""

    def key(name: str) -> tuple[int, int, str]:
        role = model.roles[name]
        if role.layer is not None and role.block_prefix == model.block_prefix:
            return (1, role.layer, name)
        return (0 if role.component == "embed" else 2, 0, name)

    return sorted(model.tensors, key=key)


def rename_layer(name: str, prefix: str | None, old: int, new: int) -> str:
    """``name`` moved from layer ``old`` of the stack at ``prefix`` to layer ``new``."""
    if prefix is None:
        return name
    head = f"{prefix}.{old}."
    return f"{prefix}.{new}." + name[len(head) :] if name.startswith(head) else name


class SlicePlanning:
    """The planner's ``slices:`` methods; ``engine.plan._Planner`` holds the state and the shared steps."""

    loaded: LoadedConfig
    config: MergeConfig
    method: MethodSpec
    models: dict[str, ModelInfo]
    layer_sources: list[tuple[ModelInfo, int]] | None

    if TYPE_CHECKING:

        def _uses_base(self) -> bool: ...

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
        ) -> None: ...

    def _plan_slices(self) -> tuple[ModelInfo, int]:
        slices = self.config.slices or []
        references = [self._slice_reference(index, output_slice) for index, output_slice in enumerate(slices)]
        first, last = references[0], references[-1]
        options = self.config.tui_merge
        if options.embeddings_from:
            self._add_outside_tasks(options.embeddings_from, embeddings=True)
        for name in ordered_names(first) if not options.embeddings_from else []:
            role = first.roles[name]
            if role.layer is None and role.component == "embed" and not first.in_tower(name):
                self._add_slice_task(0, name, name, 0.0, lambda source, name=name: name)
        for name in ordered_names(first):
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
                for name in ordered_names(reference):
                    role = reference.roles[name]
                    if role.layer != start + offset or role.block_prefix != reference.block_prefix:
                        continue
                    prefix, layer = reference.block_prefix, start + offset
                    output_name = rename_layer(name, prefix, layer, output_layer + offset)

                    def source_name(source, name=name, prefix=prefix, layer=layer, offset=offset) -> str:
                        return rename_layer(name, prefix, layer, source.layer_range[0] + offset)

                    self._add_slice_task(slice_index, name, output_name, position, source_name)
            output_layer += output_slice.length
        if options.head_from:
            self._add_outside_tasks(options.head_from, embeddings=False)
        for name in ordered_names(last) if not options.head_from else []:
            role = last.roles[name]
            if role.layer is None and role.component != "embed" and not last.in_tower(name):
                self._add_slice_task(len(slices) - 1, name, name, 0.0, lambda source, name=name: name)
        return first, output_layer

    def _add_outside_tasks(self, model: str, *, embeddings: bool) -> None:
        """The tensors before the layers (``embeddings``) or after them, copied from ``model`` (passthrough)."""
        info = self.models[model]
        key = "embeddings_from" if embeddings else "head_from"
        for name in ordered_names(info):
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
            key = f"{source.model}{KEY_SEPARATOR}{id(source)}"
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
