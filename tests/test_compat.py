"""Each compatibility finding, on tiny models built to provoke it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy

from model_factory import ModelFactory
from tui_merge.compatibility.check import check_compatibility
from tui_merge.compatibility.findings import CompatibilityReport
from tui_merge.models.info import load_model_info
from tui_merge.models.lineage import compare_lineage, probe_tensor_name
from tui_merge.samples import SampleShape

PROBE = "model.layers.0.self_attn.k_proj.weight"


def report(*folders: Path, method: str | None = None) -> CompatibilityReport:
    return check_compatibility([load_model_info(str(folder)) for folder in folders], method=method)


def codes(result: CompatibilityReport) -> dict[str, str]:
    return {finding.code: finding.severity for finding in result.findings}


def edited_config(factory: ModelFactory, source: Path, name: str, **changes: object) -> Path:
    folder = factory.damaged(name, source)
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def edited_weights(factory: ModelFactory, source: Path, name: str, edit) -> Path:
    folder = factory.damaged(name, source)
    state = load_numpy(folder / "model.safetensors")
    edit(state)
    save_numpy(state, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_fine_tunes_of_one_base_are_mergeable(llama_base: Path, llama_finetune: Path) -> None:
    result = report(llama_base, llama_finetune)

    assert result.mergeable
    assert codes(result) == {"lineage": "info"}
    assert "shares a base" in result.findings[0].message


def test_lineage_similarity_is_the_cosine_of_the_probe_tensor(llama_base: Path, llama_finetune: Path) -> None:
    base, finetune = load_model_info(str(llama_base)), load_model_info(str(llama_finetune))
    expected = cosine(
        load_numpy(llama_base / "model.safetensors")[PROBE], load_numpy(llama_finetune / "model.safetensors")[PROBE]
    )

    assert probe_tensor_name([base, finetune]) == PROBE
    assert compare_lineage(base, finetune, PROBE).similarity == pytest.approx(expected, abs=1e-9)
    assert expected > 0.99


MLP_PROBE = "model.layers.0.mlp.down_proj.weight"
"""The smallest MLP matrix of the first block (gate, up and down are one size; the first name wins)."""


def test_unrelated_pretrains_are_an_error(llama_base: Path, llama_unrelated: Path) -> None:
    result = report(llama_base, llama_unrelated)
    lineage = next(finding for finding in result.findings if finding.code == "lineage")
    a, b = load_numpy(llama_base / "model.safetensors"), load_numpy(llama_unrelated / "model.safetensors")
    best, expected = max((cosine(a[name], b[name]), name) for name in (PROBE, MLP_PROBE))[::-1]

    assert not result.mergeable
    assert lineage.severity == "error"
    assert "do not share a base" in lineage.message
    assert f"{expected:.3f} of {best}" in lineage.message
    assert abs(expected) < 0.3


def test_a_probe_matrix_the_base_left_at_zero_does_not_part_two_fine_tunes(factory, llama_base: Path) -> None:
    """A family that starts one matrix at zero: two fine-tunes of one base hold only their own changes there
    (near orthogonal), but every matrix the base trained still says they are relatives."""
    rng = np.random.default_rng(5)

    def fine_tune(seed: int):
        def edit(state: dict) -> None:
            noise = np.random.default_rng(seed)
            state[PROBE] = noise.normal(0, 0.02, state[PROBE].shape).astype(state[PROBE].dtype)  # zero in the base
            state[MLP_PROBE] = state[MLP_PROBE] + noise.normal(0, 0.002, state[MLP_PROBE].shape).astype(np.float32)

        return edit

    first = edited_weights(factory, llama_base, "zero-probe-ft1", fine_tune(int(rng.integers(1000))))
    second = edited_weights(factory, llama_base, "zero-probe-ft2", fine_tune(int(rng.integers(1000)) + 1))
    a, b = load_numpy(first / "model.safetensors"), load_numpy(second / "model.safetensors")
    assert abs(cosine(a[PROBE], b[PROBE])) < 0.3  # the first probe alone would call them unrelated

    result = report(first, second)

    lineage = next(finding for finding in result.findings if finding.code == "lineage")
    assert result.mergeable and lineage.severity == "info", lineage.message
    assert f"{cosine(a[MLP_PROBE], b[MLP_PROBE]):.3f} of {MLP_PROBE}" in lineage.message


def test_a_constant_probe_matrix_never_calls_unrelated_models_relatives(factory, llama_base, llama_unrelated) -> None:
    """Two unrelated models that both hold a matrix of ones: cosine 1 there, which says nothing."""

    def ones(state: dict) -> None:
        state[PROBE] = np.ones_like(state[PROBE])

    first = edited_weights(factory, llama_base, "ones-a", ones)
    second = edited_weights(factory, llama_unrelated, "ones-b", ones)

    lineage = next(finding for finding in report(first, second).findings if finding.code == "lineage")
    assert lineage.severity == "error" and PROBE not in lineage.message


def test_a_distant_relative_is_a_warning(factory: ModelFactory, llama_base: Path) -> None:
    # Deltas as large as the weights themselves: what a long continued pretraining does.
    distant = factory.llama("llama-distant", finetune_seed=5)

    def moved(state: dict) -> None:
        noise = np.random.default_rng(0)
        for name, values in state.items():
            if ".layers." in name and values.ndim == 2:
                state[name] = values + noise.normal(0, values.std() * 1.2, values.shape).astype(np.float32)

    edited = edited_weights(factory, distant, "llama-distant-edit", moved)
    result = report(llama_base, edited)
    a, b = load_numpy(llama_base / "model.safetensors"), load_numpy(edited / "model.safetensors")
    similarity = max(cosine(a[name], b[name]) for name in (PROBE, MLP_PROBE))

    assert 0.3 <= similarity < 0.9
    assert codes(result)["lineage"] == "warning"
    assert result.mergeable


def test_vocab_mismatch_is_a_warning_with_three_fixes(llama_base: Path, llama_vocab_plus: Path) -> None:
    result = report(llama_base, llama_vocab_plus)
    vocab = next(finding for finding in result.findings if finding.code == "vocab_size")

    assert result.mergeable
    assert vocab.severity == "warning"
    assert "llama-base: 256, llama-vocab260: 260" in vocab.message
    assert [fix.key for fix in vocab.fixes] == ["truncate", "pad", "union"]
    assert vocab.fixes[0].summary == "cut to the base's 256 rows, dropping 4 rows of llama-vocab260"
    assert vocab.fixes[1].summary == "grow to 260 rows: 4 new rows for llama-base from its mean"
    assert vocab.fixes[2].summary.startswith("not possible here")  # llama-vocab260 ships no tokenizer
    # Embedding and head differ only in rows: not reported as broken shapes, and lineage still runs.
    assert codes(result) == {"vocab_size": "warning", "lineage": "info"}


def test_union_fix_says_what_it_would_do(llama_base: Path, llama_chat_tokens: Path) -> None:
    vocab = next(finding for finding in report(llama_base, llama_chat_tokens).findings if finding.code == "vocab_size")

    assert vocab.fixes[2].summary == (
        "llama-base's tokenizer plus 4 tokens, 260 rows matched by token; llama-base lacks 4 "
        "(filled from the base, else the models that have them)"
    )


def test_same_size_but_other_token_order_is_a_warning(llama_base: Path, llama_reordered: Path) -> None:
    result = report(llama_base, llama_reordered)
    order = next(finding for finding in result.findings if finding.code == "token_order")

    assert order.severity == "warning" and "(6 in llama-reordered)" in order.message
    assert [fix.key for fix in order.fixes] == ["union"]
    assert result.mergeable


def test_different_depth_blocks_all_but_layer_stacking(llama_base: Path, llama_deeper: Path) -> None:
    blending = report(llama_base, llama_deeper)
    stacking = report(llama_base, llama_deeper, method="passthrough")

    assert codes(blending)["depth"] == "error"
    assert "llama-base: 2 layers, llama-deeper: 4 layers" in blending.findings[0].message
    assert not blending.mergeable
    assert codes(stacking)["depth"] == "info"
    assert stacking.mergeable


@pytest.mark.parametrize(
    ("shape", "code"),
    [
        (SampleShape(hidden=64), "hidden_size"),
        (SampleShape(heads=8, kv_heads=2), "attention_heads"),
        (SampleShape(kv_heads=4), "kv_heads"),
    ],
)
def test_different_width_or_heads_is_an_error(factory: ModelFactory, llama_base: Path, shape, code: str) -> None:
    other = factory.llama(f"llama-{code}", finetune_seed=1, shape=shape)
    result = report(llama_base, other)

    assert codes(result)[code] == "error"
    assert not result.mergeable
    # Shape-level errors make the per-tensor and lineage checks meaningless; they are skipped.
    assert "tensor_shapes" not in codes(result) and "lineage" not in codes(result)


def test_different_architecture_is_an_error(factory: ModelFactory, llama_base: Path) -> None:
    result = report(llama_base, factory.family("mistral"))

    assert codes(result)["architecture"] == "error"
    assert "llama/LlamaForCausalLM" in result.findings[0].message
    assert "mistral/MistralForCausalLM" in result.findings[0].message


def test_dtype_difference_is_information(factory: ModelFactory, llama_base: Path) -> None:
    import torch

    half = factory.llama("llama-fp16", finetune_seed=1, dtype=torch.float16)
    result = report(llama_base, half)

    assert codes(result) == {"dtype": "info", "lineage": "info"}
    assert "llama-base: float32, llama-fp16: float16" in result.findings[0].message


def test_llama1_with_llama2_context_lengths_is_a_warning(
    factory: ModelFactory, llama_base: Path, llama_finetune: Path
) -> None:
    llama2 = edited_config(factory, llama_finetune, "llama2-like", max_position_embeddings=4096)
    rope = edited_config(factory, llama_finetune, "rope-like", rope_theta=500000.0, rope_parameters=None)

    assert codes(report(llama_base, llama2))["pretraining_max_positions"] == "warning"
    assert codes(report(llama_base, rope))["pretraining_rope_theta"] == "warning"
    assert "different pretraining generations" in report(llama_base, llama2).findings[0].message


def test_tied_embeddings_difference_is_a_warning(factory: ModelFactory, llama_base: Path, llama_finetune: Path) -> None:
    tied = edited_weights(
        factory,
        edited_config(factory, llama_finetune, "tied-config", tie_word_embeddings=True),
        "tied",
        lambda state: state.pop("lm_head.weight"),
    )

    assert codes(report(llama_base, tied)) == {"tied_embeddings": "warning", "lineage": "info"}


def test_a_tensor_of_the_wrong_shape_is_named(factory: ModelFactory, llama_base: Path, llama_finetune: Path) -> None:
    name = "model.layers.1.mlp.up_proj.weight"
    broken = edited_weights(
        factory, llama_finetune, "wrong-shape", lambda state: state.__setitem__(name, state[name][:, :16].copy())
    )
    result = report(llama_base, broken)
    finding = next(finding for finding in result.findings if finding.code == "tensor_shapes")

    assert finding.severity == "error"
    assert f"{name} [64, 32] vs [64, 16]" in finding.message


def test_missing_tensors_are_a_warning(factory: ModelFactory, llama_base: Path, llama_finetune: Path) -> None:
    name = "model.layers.0.self_attn.o_proj.weight"
    broken = edited_weights(factory, llama_finetune, "missing", lambda state: state.pop(name))
    finding = next(finding for finding in report(llama_base, broken).findings if finding.code == "missing_tensors")

    assert finding.severity == "warning"
    assert f"missing lacks 1 tensors that llama-base has (e.g. {name})" in finding.message


def test_config_depth_that_disagrees_with_the_weights_is_an_error(factory: ModelFactory, llama_finetune: Path) -> None:
    partial = edited_config(factory, llama_finetune, "partial", num_hidden_layers=3)
    result = report(partial)

    assert codes(result) == {"config_depth": "error"}
    assert "config.json says 3 layers but the weights hold 2 blocks" in result.findings[0].message


def test_findings_are_sorted_by_severity(factory: ModelFactory, llama_base: Path, llama_unrelated: Path) -> None:
    unrelated_llama2 = edited_config(factory, llama_unrelated, "unrelated-llama2", max_position_embeddings=4096)
    severities = [finding.severity for finding in report(llama_base, unrelated_llama2).findings]

    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert severities[0] == "error"
