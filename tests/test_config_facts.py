"""config.json facts for every family, checked against transformers' own reading of the config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoConfig

from model_factory import ModelFactory
from tui_merge.errors import BadInputError
from tui_merge.models.config_facts import read_config_facts
from tui_merge.samples import SAMPLE_FAMILIES


@pytest.mark.parametrize("family", SAMPLE_FAMILIES)
def test_facts_agree_with_transformers(factory: ModelFactory, family: str) -> None:
    folder = factory.family(family)
    facts = read_config_facts(folder)
    # transformers' attribute_map translates n_embd, n_layer... to the common names.
    reference = AutoConfig.from_pretrained(folder)

    assert facts.model_type == reference.model_type
    assert facts.num_layers == reference.num_hidden_layers
    assert facts.hidden_size == reference.hidden_size
    assert facts.num_heads == reference.num_attention_heads
    assert facts.vocab_size == reference.vocab_size
    assert facts.max_positions == getattr(reference, "max_position_embeddings", None)
    assert facts.tie_word_embeddings == reference.tie_word_embeddings
    assert facts.dtype == "float32"
    if family in {"llama", "mistral", "qwen2", "gemma", "phi3"}:
        assert facts.num_kv_heads == reference.num_key_value_heads == 2
        assert facts.rope_theta == 10000.0


def test_falcon_multi_query_means_one_key_value_head(factory: ModelFactory) -> None:
    facts = read_config_facts(factory.family("falcon"))

    assert facts.num_kv_heads == 1


def write_config(folder: Path, config: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_multimodal_text_config_supplies_the_language_model_facts(tmp_path: Path) -> None:
    folder = write_config(
        tmp_path,
        {
            "model_type": "llava",
            "architectures": ["LlavaForConditionalGeneration"],
            "text_config": {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                            "vocab_size": 32064, "rope_theta": 500000.0},
        },
    )  # fmt: skip
    facts = read_config_facts(folder)

    assert (facts.hidden_size, facts.num_layers, facts.num_kv_heads, facts.vocab_size) == (4096, 32, 32, 32064)
    assert facts.rope_theta == 500000.0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{ not json", "is not valid JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"hidden_size": "big"}', 'gives hidden_size as "big", which must be a whole number'),
        ('{"num_hidden_layers": -2}', "gives num_hidden_layers as -2, which must be a whole number from 0"),
        ('{"num_hidden_layers": 2.5}', "gives num_hidden_layers as 2.5, which must be a whole number"),
        ('{"num_hidden_layers": true}', "gives num_hidden_layers as true"),
        ('{"vocab_size": Infinity}', "gives vocab_size as inf, which must be a whole number"),
        ('{"vocab_size": NaN}', "gives vocab_size as nan"),
        ('{"vocab_size": 1e300}', "gives vocab_size as 1e\\+300, which must be a whole number from 1 to 1073741824"),
        ('{"n_embd": 123456789012345678901234567890}', "gives n_embd as 12345678901234567890123456789"),
        ('{"rope_theta": -1}', "gives rope_theta as -1, which must be a positive number"),
        ('{"model_type": ["llama"]}', "gives model_type as \\['llama'\\], which is not a name"),
        ("[" * 100_000 + "]" * 100_000, "is nested too deeply"),
        ('{"n": ' + "9" * 5000 + "}", "is not valid JSON"),
    ],
)
def test_unusable_config_json_is_one_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "config.json").write_text(content)

    with pytest.raises(BadInputError, match=expected) as caught:
        read_config_facts(tmp_path)
    assert str(tmp_path / "config.json") in caught.value.message


def test_config_json_beyond_a_megabyte_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"pad": "' + "x" * (1 << 20) + '"}')

    with pytest.raises(BadInputError, match="refused unread"):
        read_config_facts(tmp_path)


def test_zero_layers_is_a_model_of_no_stack(tmp_path: Path) -> None:
    """transformers writes num_hidden_layers 0 for models without a stack of layers (glm_image's VQ model)."""
    (tmp_path / "config.json").write_text('{"num_hidden_layers": 0}')

    assert read_config_facts(tmp_path).num_layers == 0


def test_four_point_zero_layers_read_as_four(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"num_hidden_layers": 4.0}')

    assert read_config_facts(tmp_path).num_layers == 4


def test_missing_config_json_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="has no config.json"):
        read_config_facts(tmp_path)
