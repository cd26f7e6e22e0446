"""Tiny sample models, built offline in a second: for ``tui-merge demo`` and the tests.

A sample is a randomly initialised transformers model of one family, small
enough (hidden 32, 2 layers) that building and merging it is instant, saved
with ``save_pretrained`` like any downloaded checkpoint. Relatives are built
the way real ones arise: a fine-tune is its base plus small deltas, a deeper
or larger-vocabulary variant keeps the base's weights where shapes allow, and
an unrelated model is simply another random initialisation.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

SAMPLE_FAMILIES = ("llama", "mistral", "qwen2", "gemma", "phi3", "gpt2", "gptj", "gpt_neox", "opt", "falcon", "bert")

_CORPUS = (
    "Merging models averages their weights layer by layer, tensor by tensor.",
    "A fine-tune moves the weights of its base only a little, so fine-tunes of one base can be merged.",
    "The quick brown fox jumps over the lazy dog while the server merges two checkpoints overnight.",
    "Hello world: this tiny tokenizer exists so that tests never download anything.",
)
_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")


@dataclass(frozen=True)
class SampleShape:
    """The size of a sample model."""

    layers: int = 2
    hidden: int = 32
    heads: int = 4
    kv_heads: int = 2
    vocab_size: int = 256
    max_positions: int = 128


def sample_config(family: str, shape: SampleShape = SampleShape(), **overrides: Any) -> PretrainedConfig:
    """A transformers config for a tiny model of ``family``; ``overrides`` set any config field."""
    import transformers

    common = {
        "hidden_size": shape.hidden,
        "intermediate_size": shape.hidden * 2,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "vocab_size": shape.vocab_size,
        "max_position_embeddings": shape.max_positions,
    }
    tokens = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3}
    gqa = {"num_key_value_heads": shape.kv_heads}
    gpt = {"n_embd": shape.hidden, "n_layer": shape.layers, "n_head": shape.heads,
           "vocab_size": shape.vocab_size, "n_positions": shape.max_positions, **tokens}  # fmt: skip
    settings: dict[str, tuple[str, dict[str, Any]]] = {
        "llama": ("LlamaConfig", {**common, **gqa, **tokens}),
        "mistral": ("MistralConfig", {**common, **gqa, **tokens}),
        "qwen2": ("Qwen2Config", {**common, **gqa, **tokens}),
        "gemma": ("GemmaConfig", {**common, **gqa, **tokens, "head_dim": shape.hidden // shape.heads}),
        "phi3": ("Phi3Config", {**common, **gqa, **tokens}),
        "gpt2": ("GPT2Config", gpt),
        "gptj": ("GPTJConfig", {**gpt, "rotary_dim": shape.hidden // shape.heads // 2}),
        "gpt_neox": ("GPTNeoXConfig", {**common, **tokens}),
        "opt": ("OPTConfig", {**common, **tokens, "ffn_dim": shape.hidden * 2, "word_embed_proj_dim": shape.hidden}),
        "falcon": ("FalconConfig", {**common, **tokens, "new_decoder_architecture": False}),
        "bert": ("BertConfig", {**common, "pad_token_id": 3}),
    }
    if family not in settings:
        raise ValueError(f"no sample family {family!r}; choose one of {', '.join(SAMPLE_FAMILIES)}")
    class_name, values = settings[family]
    return getattr(transformers, class_name)(**{**values, **overrides})


def random_model(config: PretrainedConfig, seed: int) -> PreTrainedModel:
    """A model with weights drawn from ``seed``."""
    import torch
    from transformers import AutoModelForCausalLM, BertForMaskedLM

    torch.manual_seed(seed)
    if config.model_type == "bert":
        return BertForMaskedLM(config).eval()
    return AutoModelForCausalLM.from_config(config).eval()


def inherit_weights(model: PreTrainedModel, parent: PreTrainedModel) -> None:
    """Copy the parent's values into every tensor of the same name, over the rows both have."""
    import torch

    parent_state = parent.state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            source = parent_state.get(name)
            if source is None or source.shape[1:] != tensor.shape[1:]:
                continue
            rows = min(source.shape[0], tensor.shape[0]) if tensor.dim() else None
            if rows is None:
                tensor.copy_(source)
            else:
                tensor[:rows].copy_(source[:rows])


def add_finetune_deltas(model: PreTrainedModel, seed: int, scale: float = 0.05) -> None:
    """Move every weight by Gaussian noise of ``scale`` times the tensor's mean magnitude."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                magnitude = tensor.abs().mean().clamp_min(1e-3)
                tensor.add_(torch.randn(tensor.shape, generator=generator) * magnitude * scale)


def sample_tokenizer(vocab_size: int = 256) -> PreTrainedTokenizerFast:
    """A BPE tokenizer trained on a built-in corpus and filled to exactly ``vocab_size`` tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=sorted(set(string.printable.strip()) | {"▁"}),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.add_tokens([f"<extra_{index}>" for index in range(vocab_size - len(tokenizer))])
    if len(tokenizer) != vocab_size:
        raise ValueError(f"a sample tokenizer needs at least {len(tokenizer)} tokens, not {vocab_size}")
    return tokenizer


def save_model(model: PreTrainedModel, folder: Path, *, dtype: torch.dtype | None = None, **save_options: Any) -> Path:
    """Save like a downloaded checkpoint (optionally cast to ``dtype``) and return the folder."""
    from transformers.utils import logging as transformers_logging

    if dtype is not None:
        model = model.to(dtype)
    transformers_logging.disable_progress_bar()
    model.save_pretrained(folder, **save_options)
    return folder


SAMPLE_TAG = "tui-merge-sample"
"""The tag in a sample model's card (``README.md``): what ``compare`` and Try look for to say that its text is
noise."""


def is_sample_model(folder: Path) -> bool:
    """True for a model folder built by ``tui-merge demo`` (untrained: its words are noise)."""
    try:
        return SAMPLE_TAG in (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def build_demo_models(folder: Path) -> list[Path]:
    """The demo's models: a small llama base, a fine-tune of it, and an unrelated pretrain, each with a tokenizer
    and a card that says they are untrained samples."""
    import torch

    config = sample_config("llama", SampleShape(layers=4, hidden=64, heads=4, kv_heads=2, vocab_size=320))
    tokenizer = sample_tokenizer(config.vocab_size)
    paths = []
    for name, seed, finetune_seed in (("demo-base", 0, None), ("demo-chat", 0, 1), ("demo-unrelated", 7, None)):
        model = random_model(config, seed=seed)
        if finetune_seed is not None:
            add_finetune_deltas(model, finetune_seed)
        path = save_model(model, folder / name, dtype=torch.bfloat16)
        tokenizer.save_pretrained(path)
        (path / "README.md").write_text(
            f"---\ntags:\n- {SAMPLE_TAG}\n---\n\n# {name}\n\nAn untrained sample model that `tui-merge demo` "
            "built from random weights to show the wizard: its text is noise and its perplexity near its "
            "vocabulary size.\n",
            encoding="utf-8",
        )
        paths.append(path)
    return paths
