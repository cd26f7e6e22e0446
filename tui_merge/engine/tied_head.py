"""Whether the output's head is tied to its embeddings: what the tensors say, where the config says otherwise."""

from __future__ import annotations

from tui_merge.models.info import ModelInfo


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
    heads = sorted(name for name in model.tensors if is_head_name(name) and name.endswith(".weight"))
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
    from tui_merge.models.reader import TensorReader  # torch, which planning a merge does not need

    first, second = model.tensors[head], model.tensors[embedding]
    if first.shape != second.shape or first.dtype != second.dtype:
        return True
    rows = first.shape[0]
    with TensorReader() as reader:
        return any(
            not bool((reader.read_rows(first, row, row + 1) == reader.read_rows(second, row, row + 1)).all())
            for row in sorted({0, rows // 2, rows - 1})
        )


def is_head_name(name: str) -> bool:
    """True for an output head's tensor name (``lm_head``, GPT-NeoX's ``embed_out``)."""
    return name.startswith(("lm_head.", "embed_out.")) or ".lm_head." in name
