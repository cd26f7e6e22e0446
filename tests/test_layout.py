"""Tensor classification for every supported family, on models transformers really saved."""

from __future__ import annotations

import pytest

from model_factory import ModelFactory
from tui_merge.models.info import load_model_info
from tui_merge.models.layout import classify_tensor, family_layout
from tui_merge.samples import SAMPLE_FAMILIES

# name -> (layer, component) for names each family really stores.
EXPECTED = {
    "llama": {
        "model.embed_tokens.weight": (None, "embed"),
        "model.layers.1.self_attn.k_proj.weight": (1, "attn"),
        "model.layers.0.mlp.gate_proj.weight": (0, "mlp"),
        "model.layers.0.post_attention_layernorm.weight": (0, "norm"),
        "model.norm.weight": (None, "norm"),
        "lm_head.weight": (None, "head"),
    },
    "mistral": {
        "model.layers.0.self_attn.o_proj.weight": (0, "attn"),
        "model.layers.1.mlp.down_proj.weight": (1, "mlp"),
    },
    "qwen2": {
        "model.layers.0.self_attn.q_proj.bias": (0, "attn"),
        "model.layers.0.input_layernorm.weight": (0, "norm"),
    },
    "gemma": {"model.embed_tokens.weight": (None, "embed"), "model.layers.1.mlp.up_proj.weight": (1, "mlp")},
    "phi3": {
        "model.layers.0.self_attn.qkv_proj.weight": (0, "attn"),
        "model.layers.0.mlp.gate_up_proj.weight": (0, "mlp"),
        "lm_head.weight": (None, "head"),
    },
    "gpt2": {
        "transformer.wte.weight": (None, "embed"),
        "transformer.wpe.weight": (None, "embed"),
        "transformer.h.0.ln_1.weight": (0, "norm"),
        "transformer.h.0.attn.c_attn.weight": (0, "attn"),
        "transformer.h.0.attn.c_proj.bias": (0, "attn"),
        "transformer.h.1.mlp.c_fc.weight": (1, "mlp"),
        "transformer.h.1.mlp.c_proj.weight": (1, "mlp"),
        "transformer.ln_f.weight": (None, "norm"),
    },
    "gptj": {
        "transformer.h.0.attn.out_proj.weight": (0, "attn"),
        "transformer.h.0.mlp.fc_in.bias": (0, "mlp"),
        "transformer.h.1.ln_1.weight": (1, "norm"),
        "lm_head.bias": (None, "head"),
    },
    "gpt_neox": {
        "gpt_neox.embed_in.weight": (None, "embed"),
        "gpt_neox.layers.0.attention.query_key_value.weight": (0, "attn"),
        "gpt_neox.layers.0.attention.dense.weight": (0, "attn"),
        "gpt_neox.layers.1.mlp.dense_h_to_4h.weight": (1, "mlp"),
        "gpt_neox.final_layer_norm.weight": (None, "norm"),
        "embed_out.weight": (None, "head"),
    },
    "opt": {
        "model.decoder.embed_tokens.weight": (None, "embed"),
        "model.decoder.embed_positions.weight": (None, "embed"),
        "model.decoder.layers.0.self_attn.out_proj.weight": (0, "attn"),
        "model.decoder.layers.0.self_attn_layer_norm.weight": (0, "norm"),
        "model.decoder.layers.1.fc1.weight": (1, "mlp"),
        "model.decoder.layers.1.final_layer_norm.bias": (1, "norm"),
        "model.decoder.final_layer_norm.weight": (None, "norm"),
    },
    "falcon": {
        "transformer.word_embeddings.weight": (None, "embed"),
        "transformer.h.0.self_attention.query_key_value.weight": (0, "attn"),
        "transformer.h.0.self_attention.dense.weight": (0, "attn"),
        "transformer.h.1.mlp.dense_4h_to_h.weight": (1, "mlp"),
        "transformer.h.1.input_layernorm.weight": (1, "norm"),
        "transformer.ln_f.bias": (None, "norm"),
    },
    "bert": {
        "bert.embeddings.word_embeddings.weight": (None, "embed"),
        "bert.embeddings.LayerNorm.weight": (None, "norm"),
        "bert.encoder.layer.0.attention.self.query.weight": (0, "attn"),
        "bert.encoder.layer.0.attention.output.dense.weight": (0, "attn"),
        "bert.encoder.layer.0.attention.output.LayerNorm.weight": (0, "norm"),
        "bert.encoder.layer.1.intermediate.dense.weight": (1, "mlp"),
        "bert.encoder.layer.1.output.dense.weight": (1, "mlp"),
        "bert.encoder.layer.1.output.LayerNorm.bias": (1, "norm"),
        "cls.predictions.transform.LayerNorm.weight": (None, "head"),
        "cls.predictions.bias": (None, "head"),
    },
}
TOKEN_EMBEDDING = {
    "gpt2": "transformer.wte.weight",
    "gptj": "transformer.wte.weight",
    "gpt_neox": "gpt_neox.embed_in.weight",
    "opt": "model.decoder.embed_tokens.weight",
    "falcon": "transformer.word_embeddings.weight",
    "bert": "bert.embeddings.word_embeddings.weight",
}


@pytest.mark.parametrize("family", SAMPLE_FAMILIES)
def test_family_layout(factory: ModelFactory, family: str) -> None:
    info = load_model_info(str(factory.family(family)))

    for name, (layer, component) in EXPECTED[family].items():
        role = info.roles[name]
        assert (role.layer, role.component) == (layer, component), name
    assert info.depth == 2
    assert info.embedding_name == TOKEN_EMBEDDING.get(family, "model.embed_tokens.weight")
    assert info.vocab_rows == 256
    for name, role in info.roles.items():
        # Every stored tensor of these families has a known place.
        assert role.component != "other", name
        if role.layer is None:
            assert role.component in {"embed", "norm", "head"}, name
        else:
            assert role.component in {"attn", "mlp", "norm"}, name
            assert role.block_prefix == info.block_prefix


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("encoder.stages.3.conv_mixer.weight", (3, "other", "encoder.stages")),
        ("backbone.blocks.2.attn.qkv.weight", (2, "attn", "backbone.blocks")),
        ("net.cells.11.ffn.w1.weight", (11, "mlp", "net.cells")),
        ("net.cells.0.pre_norm.weight", (0, "norm", "net.cells")),
        ("tok_embeddings.weight", (None, "embed", None)),
        ("output.weight", (None, "head", None)),
        # Mixture-of-experts: the block index is the first number, not the expert's.
        ("model.layers.5.block_sparse_moe.experts.3.w1.weight", (5, "mlp", "model.layers")),
    ],
)
def test_unknown_family_falls_back_to_numbered_blocks(name: str, expected: tuple) -> None:
    role = classify_tensor(name, family_layout("some-new-architecture"))

    assert (role.layer, role.component, role.block_prefix) == expected


def test_separate_block_stacks_keep_their_own_prefix() -> None:
    names = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(4)]
    names += [f"vision_tower.encoder.layers.{i}.mlp.fc1.weight" for i in range(6)]
    prefixes = {classify_tensor(name).block_prefix for name in names}

    assert prefixes == {"model.layers", "vision_tower.encoder.layers"}


@pytest.mark.parametrize("family", ["gpt2", "falcon", "bert"])
def test_rows_outside_the_layers_are_labelled_from_their_names(factory: ModelFactory, family: str) -> None:
    """gpt2's and falcon's ``transformer.`` prefix is no head transform; bert's ``cls.predictions.transform`` is."""
    from tui_merge.config.rendering import outside_rows

    info = load_model_info(str(factory.family(family)))
    labels = {row.filter: row.label for row in outside_rows(info)}

    embedding = TOKEN_EMBEDDING[family].removesuffix(".weight")
    assert labels[embedding] == ("word embeddings" if family in ("gpt2", "bert") else "embeddings"), labels
    if family == "gpt2":
        assert labels["transformer.wpe"] == "position embeddings"
    transforms = {name: label for name, label in labels.items() if "head transform" in label}
    assert all(".transform" in name for name in transforms), transforms
    assert bool(transforms) == (family == "bert")
