"""Hub ids the cache lacks are inspected from the Hub (a stand-in on 127.0.0.1) with no weights downloaded."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from tui_merge.cli import main
from tui_merge.errors import BadInputError
from tui_merge.models.info import load_model_info
from tui_merge.models.lineage import probe_tensor_names


@pytest.fixture(scope="module")
def llama_sharded(factory) -> Path:
    return factory.sharded("llama-finetune-sharded", factory.llama("llama-finetune", finetune_seed=1))


def weight_files(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.name.endswith((".safetensors", ".bin"))]


def header_bytes(path: Path) -> int:
    """8 plus the header length a safetensors file declares: the bytes a header read needs."""
    return 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


def test_two_remote_repos_inspect_like_their_folders_with_no_weights_downloaded(
    hub, llama_base, llama_sharded, tmp_path, capsys
) -> None:
    hub.add("org/base", llama_base)
    hub.add("org/chat", llama_sharded)

    assert main(["inspect", "--json", "org/base", "org/chat"]) == 0

    remote = json.loads(capsys.readouterr().out)
    assert main(["inspect", "--json", str(llama_base), str(llama_sharded)]) == 0
    local = json.loads(capsys.readouterr().out)
    where = {"label", "folder", "from_cache", "commit", "downloaded", "hub_bytes_read"}
    for got, want in zip(remote["models"], local["models"]):
        assert {key: got[key] for key in got.keys() - where} == {key: want[key] for key in want.keys() - where}
        assert got["from_cache"] and not got["downloaded"] and got["hub_bytes_read"] > 0
    assert [f["message"].replace("org/chat", "B").replace("org/base", "A") for f in remote["findings"]] == [
        f["message"].replace(llama_sharded.name, "B").replace(llama_base.name, "A") for f in local["findings"]
    ]
    assert weight_files(tmp_path / "hf-cache") == []
    assert (tmp_path / "hf-cache").is_dir() and any((tmp_path / "hf-cache").rglob("config.json"))


def test_the_lineage_probe_reads_headers_and_the_probe_tensors_only(
    hub, llama_base, llama_finetune, tmp_path, monkeypatch, capsys
) -> None:
    from tui_merge.models import hub as hub_module

    monkeypatch.setattr(hub_module, "HEADER_PROBE_BYTES", 1024)  # the fixtures' files are smaller than the default
    finetune = llama_finetune
    hub.add("org/base", llama_base)
    hub.add("org/chat", finetune)

    assert main(["inspect", "org/base", "org/chat"]) == 0

    out = capsys.readouterr().out
    assert "shares a base" in out and "weights not downloaded" in out
    probes = probe_tensor_names([load_model_info(str(llama_base)), load_model_info(str(finetune))])
    probe_bytes = sum(load_model_info(str(llama_base)).tensors[name].nbytes for name in probes)
    # Both repos serve a model.safetensors: each gave its header (one request, or two when longer than 1024
    # bytes) and its probe tensors, nothing more.
    assert hub.sent["model.safetensors"] == sum(
        max(1024, header_bytes(folder / "model.safetensors")) + probe_bytes for folder in (llama_base, finetune)
    )
    assert hub.sent["model.safetensors"] < (llama_base / "model.safetensors").stat().st_size
    assert weight_files(tmp_path / "hf-cache") == []


def test_a_revision_is_pinned_to_its_commit_and_an_old_commit_still_resolves(hub, llama_base, llama_sharded) -> None:
    first = hub.add("org/model", llama_base)
    second = hub.add("org/model", llama_sharded)

    latest = load_model_info("org/model")
    pinned = load_model_info(f"org/model@{first}")

    assert latest.source.commit == second and latest.checkpoint.format == "safetensors"
    assert len(latest.checkpoint.files) > 1
    assert pinned.source.commit == first and len(pinned.checkpoint.files) == 1
    assert pinned.source.hub.pinned == f"org/model@{first}"


@pytest.mark.parametrize(
    ("argument", "sentence"),
    [
        ("org/gated", "org/gated is gated: accept its licence at {url}/org/gated, then log in with `hf auth login`"),
        ("org/missing", "org/missing is neither a folder nor a model on the Hub ({url}); check the id"),
        ("org/base@v9", "org/base has no revision 'v9' on the Hub; give a branch, tag or commit hash it has."),
        ("org/empty", "org/empty on the Hub has no config.json; it is not a transformers model"),
    ],
)
def test_hub_refusals_are_one_sentence_each(hub, llama_base, tmp_path, capsys, argument, sentence) -> None:
    hub.add("org/base", llama_base)
    hub.add("org/gated", llama_base, gated=True)
    empty = tmp_path / "empty-repo"
    empty.mkdir()
    (empty / "README.md").write_text("nothing here\n")
    hub.add("org/empty", empty)

    assert main(["inspect", argument]) == 2

    err = capsys.readouterr().err
    assert sentence.format(url=hub.url) in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_an_unreachable_hub_is_one_sentence(hub, monkeypatch, capsys) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens

    assert main(["inspect", "org/base"]) == 1

    err = capsys.readouterr().err
    assert "Cannot reach the Hub (http://127.0.0.1:9) for org/base" in err and "HF_HUB_OFFLINE=1" in err


def test_offline_mode_never_asks_the_hub_and_says_so(hub, llama_base, monkeypatch) -> None:
    from huggingface_hub import constants

    hub.add("org/base", llama_base)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(BadInputError) as caught:
        load_model_info("org/base")

    assert "HF_HUB_OFFLINE keeps tui-merge off the Hub" in caught.value.message
    assert "hf download org/base" in caught.value.message
    assert hub.requests == []


def test_a_preflighted_repo_is_read_from_the_hub_again_until_its_weights_are_downloaded(
    hub, llama_base, monkeypatch
) -> None:
    from huggingface_hub import constants

    hub.add("org/base", llama_base)
    load_model_info("org/base")
    asked = len(hub.requests)

    again = load_model_info("org/base")
    assert not again.downloaded and len(hub.requests) > asked

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BadInputError, match="without all its weights, and HF_HUB_OFFLINE keeps"):
        load_model_info("org/base")


def test_compare_refuses_a_model_whose_weights_are_on_the_hub_naming_the_download(hub, llama_base) -> None:
    from tui_merge.evaluation.scoring import model_folder

    commit = hub.add("org/base", llama_base)

    with pytest.raises(BadInputError) as caught:
        model_folder("org/base")

    assert f"hf download org/base --revision {commit}" in caught.value.message


def test_the_tools_that_read_every_weight_refuse_a_hub_model_not_downloaded(hub, llama_base, tmp_path, capsys) -> None:
    commit = hub.add("org/chat", llama_base)

    assert main(["extract-lora", "--model", "org/chat", "--base", str(llama_base), str(tmp_path / "lora")]) == 2

    said = capsys.readouterr().err
    assert "org/chat's weights are not downloaded" in said and f"hf download org/chat --revision {commit}" in said
    assert not (tmp_path / "lora").exists() and weight_files(tmp_path / "hf-cache") == []
