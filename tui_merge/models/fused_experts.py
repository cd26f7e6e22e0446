"""How a tensor that holds every expert of a layer is put together, from transformers' own conversion mapping.

transformers 5 loads per-expert checkpoints (``mlp.experts.3.gate_proj.weight``) into fused tensors
(``mlp.experts.gate_up_proj`` [experts, 2 x intermediate, hidden]): the experts stacked on the first dimension,
each expert's gate and up matrices concatenated on the second. A checkpoint stored in that fused form is merged
matrix by matrix (expert 3's gate, then its up), so it merges to the same numbers as the per-expert copy of it:
a method that takes an angle, a threshold or a norm over a tensor takes it over the same matrix either way.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=64)
def matrices_per_expert(model_type: str | None, name: str) -> int:
    """How many stored matrices one expert's slice of the fused tensor ``name`` concatenates on its first
    dimension: 2 for a gate and up projection built from two per-expert tensors, else 1.

    Read from the converter of the family's checkpoint conversion mapping whose target ends ``name``
    (``MergeModulelist`` over dim 0, then ``Concatenate`` over dim 1); 1 where transformers has no such
    converter (gpt_oss stores its experts fused and interleaved, and is merged expert by expert).
    """
    if not model_type:
        return 1
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        converters = get_checkpoint_conversion_mapping(model_type) or []
    except Exception:  # noqa: BLE001 - a transformers without this mapping: merge each expert whole
        return 1
    for converter in converters:
        operations = [(type(op).__name__, getattr(op, "dim", None)) for op in getattr(converter, "operations", [])]
        targets = getattr(converter, "target_patterns", None) or []
        if operations != [("MergeModulelist", 0), ("Concatenate", 1)]:
            continue
        if any(name.endswith(str(target).strip("^$")) for target in targets):
            return len(getattr(converter, "source_patterns", []) or [1])
    return 1
