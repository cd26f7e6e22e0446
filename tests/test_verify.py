"""``tui-merge verify``: a sound merge passes, and each kind of damage fails the check that should catch it."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from tui_merge.cli import main
from tui_merge.engine.verification import verify_output


@pytest.fixture(scope="module")
def merged(tmp_path_factory, llama_base, llama_finetune) -> Path:
    """A sharded merge of the fixture models, with its recipe and tokenizer."""
    folder = tmp_path_factory.mktemp("verify")
    config = folder / "merge.yaml"
    config.write_text(
        f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n"
        "tui_merge: {shard_size: 40KB}\n"
    )
    assert main(["run", str(config), str(folder / "merged")]) == 0
    return folder / "merged"


@pytest.fixture()
def copy(tmp_path, merged) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(merged, target)
    return target


def outcomes(folder: Path) -> dict[str, str]:
    return {check.name: check.outcome for check in verify_output(folder).checks}


def details(folder: Path) -> dict[str, str]:
    return {check.name: check.detail for check in verify_output(folder).checks}


def shard_holding(folder: Path, tensor: str) -> Path:
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    return folder / index["weight_map"][tensor]


def test_a_sound_merge_passes_every_check(merged, capsys) -> None:
    assert outcomes(merged) == {
        "weights": "passed",
        "index": "passed",
        "manifest": "passed",
        "finite": "passed",
        "config": "passed",
        "recipe": "passed",
        "transformers": "passed",
    }
    assert main(["verify", str(merged)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("passed verification.")


def test_nan_in_an_output_tensor_fails_naming_it(copy, capsys) -> None:
    name = "model.layers.1.mlp.up_proj.weight"
    shard = shard_holding(copy, name)
    state = load_file(shard)
    state[name][0, 0] = np.nan
    save_file(state, shard, metadata={"format": "pt"})

    assert outcomes(copy)["finite"] == "failed"
    assert name in details(copy)["finite"]
    assert main(["verify", str(copy)]) == 1
    assert "failed verification: manifest, finite" in capsys.readouterr().out


def test_config_that_disagrees_with_the_weights_fails(copy) -> None:
    config = json.loads((copy / "config.json").read_text())
    config["vocab_size"], config["num_hidden_layers"] = 300, 3
    (copy / "config.json").write_text(json.dumps(config))

    detail = details(copy)["config"]
    assert outcomes(copy)["config"] == "failed"
    assert "config.json says 3 layers, the weights have 2" in detail
    assert "config.json says vocab_size 300, the embedding has 256 rows" in detail


def test_a_special_token_id_past_the_embedding_is_said_not_failed(copy) -> None:
    """starcoder2's and canine's default configs name a bos id past their vocabulary; transformers only warns."""
    config = json.loads((copy / "config.json").read_text())
    config["bos_token_id"] = 300
    (copy / "config.json").write_text(json.dumps(config))

    assert outcomes(copy)["config"] == "info"
    assert "bos_token_id 300 is past the embedding's 256 rows" in details(copy)["config"]


def test_index_gaps_fail(copy) -> None:
    index = json.loads((copy / "model.safetensors.index.json").read_text())
    dropped = "model.norm.weight"
    del index["weight_map"][dropped]
    (copy / "model.safetensors.index.json").write_text(json.dumps(index))

    assert outcomes(copy)["index"] == "failed"
    assert f"1 tensor(s) the index does not list: {dropped}" in details(copy)["index"]

    (copy / "model-00099-of-00099.safetensors").write_bytes((copy / index["weight_map"]["lm_head.weight"]).read_bytes())
    assert "shard file(s) the index leaves out: model-00099-of-00099.safetensors" in details(copy)["index"]


def test_a_missing_or_retyped_tensor_fails_recipe_and_architecture(copy) -> None:
    name = "model.layers.0.self_attn.q_proj.weight"
    shard = shard_holding(copy, name)
    state = load_file(shard)
    state[name] = state[name].astype(np.float16)
    save_file(state, shard, metadata={"format": "pt"})
    assert outcomes(copy)["recipe"] == "failed"
    assert f"{name} is [32, 32] F16, the recipe makes [32, 32] F32" in details(copy)["recipe"]

    state.pop(name)
    save_file(state, shard, metadata={"format": "pt"})
    index = json.loads((copy / "model.safetensors.index.json").read_text())
    del index["weight_map"][name]
    (copy / "model.safetensors.index.json").write_text(json.dumps(index))
    assert outcomes(copy)["transformers"] == "failed"
    assert f"1 missing ({name})" in details(copy)["transformers"]
    assert f"missing 1: {name}" in details(copy)["recipe"]


def test_json_and_bad_input(merged, tmp_path, capsys) -> None:
    assert main(["verify", str(merged), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and {check["name"] for check in report["checks"]} >= {"finite", "transformers"}

    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("merge later")
    assert main(["verify", str(tmp_path / "notes")]) == 2
    assert "is not a model folder (it has neither config.json nor weight files)" in capsys.readouterr().err


def test_one_flipped_bit_fails_the_manifest_naming_the_shard(copy) -> None:
    name = "model.layers.1.mlp.down_proj.weight"
    shard = shard_holding(copy, name)
    manifest = json.loads((copy / "tui_merge_manifest.json").read_text())
    assert set(manifest["shards"]) == {path.name for path in copy.glob("*.safetensors")}
    assert manifest["shards"][shard.name]["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()
    data = bytearray(shard.read_bytes())
    data[-7] ^= 0x01  # the lowest mantissa bit of a float32 near the end: still finite, still the same shape
    shard.write_bytes(bytes(data))

    checks = outcomes(copy)
    assert checks["manifest"] == "failed" and checks["finite"] == "passed" and checks["recipe"] == "passed"
    assert details(copy)["manifest"] == (
        f"{shard.name} has changed since the merge wrote it (its sha256 differs from tui_merge_manifest.json)"
    )


def test_without_a_manifest_the_check_is_skipped(copy) -> None:
    (copy / "tui_merge_manifest.json").unlink()

    assert outcomes(copy)["manifest"] == "skipped"


def test_shards_without_an_index_fail(copy) -> None:
    (copy / "model.safetensors.index.json").unlink()

    assert outcomes(copy)["index"] == "failed"
    assert "weight files (model-00001-of-" in details(copy)["index"]
    assert "but no index naming them" in details(copy)["index"]


def test_a_wrong_total_size_fails(copy) -> None:
    index = json.loads((copy / "model.safetensors.index.json").read_text())
    stored = sum(path.stat().st_size for path in copy.glob("*.safetensors"))
    assert 0 < index["metadata"]["total_size"] < stored  # the tensors' bytes: the files less their headers
    right = index["metadata"]["total_size"]
    index["metadata"]["total_size"] = right + 4
    (copy / "model.safetensors.index.json").write_text(json.dumps(index))

    assert outcomes(copy)["index"] == "failed"
    assert details(copy)["index"] == f"the index gives total_size {right + 4}, the tensors hold {right} bytes"


@pytest.fixture(scope="module")
def sentence_encoder(tmp_path_factory) -> Path:
    """An untouched encoder as sentence-transformers models ship it: ``BertModel``, names without a prefix."""
    from transformers import BertConfig, BertModel

    from tui_merge.samples import sample_tokenizer

    folder = tmp_path_factory.mktemp("encoder") / "mini-encoder"
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=256, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    sample_tokenizer(256).save_pretrained(folder)
    return folder


def test_an_untouched_encoder_passes_and_its_probe_is_skipped(sentence_encoder) -> None:
    report = verify_output(sentence_encoder, probe=True)
    checks = {check.name: check for check in report.checks}

    assert report.ok
    assert checks["transformers"].detail == "BertModel takes every tensor with its shape"
    assert checks["probe"].outcome == "skipped"
    assert checks["probe"].detail == (
        "BertModel has no language-model head, so there is no next-token perplexity to measure"
    )


def test_probe_compares_perplexity_with_the_parents(merged) -> None:
    probe = next(check for check in verify_output(merged, probe=True).checks if check.name == "probe")

    assert probe.outcome == "info"
    assert probe.detail.startswith("perplexity on the built-in text: merge ")
    assert "llama-base" in probe.detail and "llama-finetune" in probe.detail


def test_run_with_verify_prints_the_checks(tmp_path, llama_base, llama_finetune, capsys) -> None:
    config = tmp_path / "merge.yaml"
    config.write_text(f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n")

    assert main(["run", str(config), str(tmp_path / "out"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "ok    transformers" in out and out.rstrip().endswith("passed verification.")


def _with_tensors(folder: Path, target: Path, extra: dict[str, np.ndarray]) -> Path:
    """A copy of ``folder`` whose single weights file also carries ``extra``, as older real checkpoints do."""
    shutil.copytree(folder, target)
    weights = target / "model.safetensors"
    state = load_file(weights)
    save_file({**state, **extra}, weights, metadata={"format": "pt"})
    return target


def _persisted_buffers(family: str, layers: int) -> dict[str, np.ndarray]:
    """The buffers real checkpoints of ``family`` carry that transformers no longer saves (and ignores on load)."""
    if family == "bert":
        return {"embeddings.position_ids": np.arange(64, dtype=np.int64)[None]}
    if family == "gpt2":  # the causal mask of older GPT-2 checkpoints, one per layer
        mask = np.tril(np.ones((1, 1, 32, 32), dtype=np.float32))
        return {f"transformer.h.{i}.attn.bias": mask for i in range(layers)}
    # llama: rotary inv_freq stored per layer by checkpoints of 2023
    return {f"model.layers.{i}.self_attn.rotary_emb.inv_freq": np.ones(4, dtype=np.float32) for i in range(layers)}


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama"])
def test_buffers_transformers_ignores_on_load_never_fail_verify_but_a_stranger_does(
    tmp_path, factory, sentence_encoder, family
) -> None:
    import warnings

    from transformers import AutoModel, AutoModelForCausalLM

    source = sentence_encoder if family == "bert" else factory.family(family)
    buffers = _persisted_buffers(family, 2)
    carrying = _with_tensors(source, tmp_path / "real", buffers)
    loader = AutoModel if family == "bert" else AutoModelForCausalLM
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, info = loader.from_pretrained(carrying, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["missing_keys"]  # transformers loads it without a word

    report = verify_output(carrying)

    assert report.ok, [(check.name, check.detail) for check in report.checks if check.outcome == "failed"]
    stranger = _with_tensors(
        source, tmp_path / "stranger", {**buffers, "extra.stowaway.weight": np.ones(3, np.float32)}
    )
    checks = {check.name: check for check in verify_output(stranger).checks}
    assert checks["transformers"].outcome == "failed"
    assert "1 unexpected (extra.stowaway.weight)" in checks["transformers"].detail
